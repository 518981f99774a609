//! The collector: packages and images that no version references any more
//! are deleted (after DeleteFunction, UpdateFunctionCode, and version or
//! alias deletion), once no invocation or warm boot uses them, and the
//! database gives the freed space back.
//!
//! It runs when asked ([`Collector::soon`], after every such change), when
//! the last pin of a package it had to spare goes, and once a minute. An
//! upload holds [`Collector::hold`] from storing its package until its
//! version refers to it, so that a package is never collected between the
//! two.

use std::collections::HashSet;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use mayfly_store::{GcReport, Store};

use crate::error::{blocking, HostError, HostResult};
use crate::images::ImageCache;

/// How often the collector runs unasked.
const EVERY: Duration = Duration::from_secs(60);

/// What one collection freed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Collected {
    /// Packages deleted, with their bytes.
    pub packages: GcReport,
    /// Images deleted.
    pub images: usize,
    /// Their bytes.
    pub image_bytes: u64,
    /// Unreferenced packages spared because an invocation uses them.
    pub spared: usize,
}

/// Deletes what nothing refers to.
#[derive(Debug)]
pub struct Collector {
    store: Store,
    images: ImageCache,
    /// Read: an upload between storing a package and referring to it;
    /// write: a collection.
    uploads: RwLock<()>,
}

impl Collector {
    /// The collector of `store`'s packages and `images`.
    pub fn new(store: Store, images: ImageCache) -> Arc<Collector> {
        Arc::new(Collector {
            store,
            images,
            uploads: RwLock::new(()),
        })
    }

    /// Keeps collections out until dropped.
    pub fn hold(&self) -> RwLockReadGuard<'_, ()> {
        self.uploads.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for a collection soon (it runs in the background).
    pub fn soon(&self) {
        self.images.wake_collector();
    }

    /// Collects now; blocking.
    pub fn collect(&self) -> HostResult<Collected> {
        let _exclusive = self.uploads.write().unwrap_or_else(|e| e.into_inner());
        let referenced = self.store.referenced_blobs()?;
        let cached = self.images.cached().map_err(|source| HostError::Io {
            what: "listing the image cache".into(),
            source,
        })?;
        let unreferenced_images: HashSet<String> = cached
            .into_iter()
            .filter(|sha| !referenced.contains(sha))
            .collect();
        // Pins are read after the references: a package pinned since is
        // spared, and one whose version was deleted before its invocation
        // pinned it makes that invocation fail as a deleted function.
        let mut in_use = self.images.spare_pinned(&unreferenced_images);
        in_use.extend(
            self.images
                .spare_pinned(&self.unreferenced_blobs(&referenced)),
        );
        let packages = self.store.gc_blobs_keeping(Duration::ZERO, &in_use)?;
        let mut collected = Collected {
            packages,
            spared: in_use.len(),
            ..Collected::default()
        };
        for sha in unreferenced_images.difference(&in_use) {
            match self.images.remove(sha) {
                Ok(bytes) => {
                    collected.images += 1;
                    collected.image_bytes += bytes;
                }
                Err(e) => tracing::warn!(sha256 = %sha, error = %e, "cannot delete an image"),
            }
        }
        self.store.compact()?;
        Ok(collected)
    }

    /// Blobs on disk that no version references (read from the store's
    /// listing of what it keeps).
    fn unreferenced_blobs(&self, referenced: &HashSet<String>) -> HashSet<String> {
        self.store
            .list_blobs()
            .unwrap_or_default()
            .into_iter()
            .filter(|sha| !referenced.contains(sha))
            .collect()
    }

    /// Collects when asked, when a spared package is let go, and once a
    /// minute, for as long as the host lives.
    pub async fn run(self: Arc<Self>) {
        loop {
            let collector = self.clone();
            match blocking("collecting unreferenced packages", move || {
                collector.collect()
            })
            .await
            {
                Ok(c) if c.packages.removed + c.images > 0 => tracing::info!(
                    packages = c.packages.removed,
                    package_bytes = c.packages.bytes_freed,
                    images = c.images,
                    image_bytes = c.image_bytes,
                    spared = c.spared,
                    "collected unreferenced packages and images"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot collect unreferenced packages"),
            }
            tokio::select! {
                () = self.images.collector_woken() => {}
                () = tokio::time::sleep(EVERY) => {}
            }
        }
    }
}
