//! Stubs cloned ahead of need: a child already in its namespaces and its
//! own cgroup, waiting to become a VM's QEMU.
//!
//! Joining a cgroup v1 waits for an RCU grace period (about 10 ms on this
//! kind of host), and new namespaces cost most of a millisecond more;
//! paid ahead, neither is on an invocation's path. One thread of the
//! pool's own clones them: a child's parent-death signal fires when the
//! thread that cloned it ends, so that thread lives as long as the pool.

use std::sync::{Arc, Condvar, Mutex};

use super::cgroup::{Cgroups, VmCgroup};
use crate::sys::child::{EarlySpec, SpawnFailure, Stub};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

/// A stub and the cgroup it is in.
#[derive(Debug)]
pub struct Ready {
    /// The child.
    pub stub: Stub,
    /// Its cgroup, if cgroups are in force.
    pub cgroup: Option<VmCgroup>,
}

/// How stubs are made.
#[derive(Debug, Default)]
pub struct Recipe {
    /// `CLONE_NEW*` flags.
    pub namespaces: libc::c_int,
    /// The user namespace's maps, if any.
    pub user_map: Option<(CString, CString)>,
    /// Where each stub gets a cgroup of its own.
    pub cgroups: Option<Arc<Cgroups>>,
    /// The tasks limit of each cgroup.
    pub pids_max: u32,
}

impl Recipe {
    /// One stub, made now (in the calling thread, which must outlive it).
    pub fn make(&self) -> Result<Ready, String> {
        let (cgroup, procs) = match &self.cgroups {
            Some(cgroups) => {
                // The memory limit is the VM's, set when it is used.
                let (cgroup, procs) = cgroups
                    .create(None, self.pids_max)
                    .map_err(|e| format!("cannot create a VM's cgroup: {e}"))?;
                (Some(cgroup), procs)
            }
            None => (None, Vec::new()),
        };
        let early = EarlySpec {
            namespaces: self.namespaces,
            user_map: self.user_map.clone(),
            cgroup_procs: procs
                .iter()
                .map(|p| CString::new(p.as_os_str().as_bytes()).expect("no NUL"))
                .collect(),
        };
        let stub = Stub::new(&early).map_err(|SpawnFailure { step, error }| {
            format!("the VM's process could not {step}: {error}")
        })?;
        Ok(Ready { stub, cgroup })
    }
}

#[derive(Debug, Default)]
struct State {
    ready: Vec<Ready>,
    target: usize,
    closed: bool,
}

/// Up to `target` stubs kept ready.
#[derive(Debug)]
pub struct StubPool {
    recipe: Arc<Recipe>,
    state: Arc<(Mutex<State>, Condvar)>,
}

impl StubPool {
    /// A pool that keeps `target` stubs ready (none: every spawn makes
    /// its own).
    pub fn new(recipe: Recipe, target: usize) -> StubPool {
        let pool = StubPool {
            recipe: Arc::new(recipe),
            state: Arc::new((Mutex::new(State::default()), Condvar::new())),
        };
        pool.set_target(target);
        pool
    }

    /// Changes how many stubs are kept ready; starts the pool's thread
    /// the first time it is more than none.
    pub fn set_target(&self, target: usize) {
        let (lock, wake) = &*self.state;
        let mut state = lock.lock().expect("not poisoned");
        let start = state.target == 0 && target > 0;
        state.target = target;
        wake.notify_all();
        drop(state);
        if start {
            let (recipe, state) = (self.recipe.clone(), self.state.clone());
            let spawned = std::thread::Builder::new()
                .name("mayfly-stubs".into())
                .spawn(move || refill(&recipe, &state));
            if let Err(error) = spawned {
                tracing::warn!(%error, "cannot start the thread that clones VMs ahead");
            }
        }
    }

    /// A ready stub, or one made now.
    pub fn take(&self) -> Result<Ready, String> {
        let (lock, wake) = &*self.state;
        let mut state = lock.lock().expect("not poisoned");
        let ready = state.ready.pop();
        wake.notify_all();
        drop(state);
        match ready {
            Some(ready) => Ok(ready),
            None => self.recipe.make(),
        }
    }
}

fn refill(recipe: &Recipe, state: &(Mutex<State>, Condvar)) {
    let (lock, wake) = state;
    loop {
        let mut guard = lock.lock().expect("not poisoned");
        while !guard.closed && guard.ready.len() >= guard.target {
            guard = wake.wait(guard).expect("not poisoned");
        }
        if guard.closed {
            return;
        }
        drop(guard);
        match recipe.make() {
            Ok(ready) => lock.lock().expect("not poisoned").ready.push(ready),
            Err(error) => {
                tracing::warn!(%error, "cannot clone a VM ahead; VMs are cloned on demand");
                // Do not spin on a host that refuses: spawns make their own.
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        }
    }
}

impl Drop for StubPool {
    fn drop(&mut self) {
        let (lock, wake) = &*self.state;
        let mut state = lock.lock().expect("not poisoned");
        state.closed = true;
        // Killed and reaped as they drop.
        state.ready.clear();
        wake.notify_all();
    }
}
