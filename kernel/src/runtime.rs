//! The Lambda Runtime API client and the life of the guest: ask for the
//! event, run the handler, post its result, power off.

use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use mayfly_proto::boot::{BootConfig, ENV_FW_CFG_NAME};
use mayfly_proto::exit;
use mayfly_proto::runtime::{
    self as api, HEADER_DEADLINE_MS, HEADER_FUNCTION_ARN, HEADER_FUNCTION_ERROR_TYPE,
    HEADER_HOST_CLOCK_MS, HEADER_MAX_MEMORY_BYTES, HEADER_REQUEST_ID, HEADER_TRACE_ID,
};
use serde::Serialize;
use virtio_drivers::device::console::VirtIOConsole;

use crate::global::Global;
use crate::http::{self, Response};
use crate::net::Connection;
use crate::sdk::{Context, Error};
use crate::{arch, clock, console, heap, virtio};

extern "Rust" {
    /// Defined by the function crate through [`entry!`](crate::entry).
    fn __mayfly_handler(event: &[u8], ctx: &Context) -> Result<Vec<u8>, Error>;
}

/// The connection to the runtime API and the event in flight.
pub(crate) struct Client {
    pub(crate) conn: Connection,
    pub(crate) host: String,
    request_id: Option<String>,
}

pub(crate) static CLIENT: Global<Option<Client>> = Global::new(None);

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "errorMessage")]
    error_message: &'a str,
    #[serde(rename = "errorType")]
    error_type: &'a str,
}

impl Client {
    fn request(
        &mut self,
        method: &str,
        path: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let memory = heap::max_used_bytes().to_string();
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(extra.len() + 2);
        headers.push((HEADER_MAX_MEMORY_BYTES, &memory));
        if !body.is_empty() {
            headers.push(("Content-Type", "application/json"));
        }
        headers.extend_from_slice(extra);
        match http::exchange(&mut self.conn, &self.host, method, path, &headers, body) {
            Ok(response) => response,
            Err(e) => fatal(&format!("runtime API {method} {path} failed: {e}")),
        }
    }

    fn post_error(&mut self, error_type: &str, message: &str) {
        let body = serde_json::to_vec(&ErrorBody {
            error_message: message,
            error_type,
        })
        .unwrap_or_default();
        let path = match &self.request_id {
            Some(id) => format!("{}{id}/error", api::INVOCATION_PREFIX),
            None => api::INIT_ERROR_PATH.to_string(),
        };
        self.request(
            "POST",
            &path,
            &[(HEADER_FUNCTION_ERROR_TYPE, error_type)],
            &body,
        );
    }

    fn finish(&mut self) -> ! {
        console::flush();
        self.conn.drain();
        arch::power_off(exit::OK)
    }
}

/// Reports a fatal kernel error on COM1 and ends the VM.
fn fatal(message: &str) -> ! {
    console::flush();
    console::kernel_line(format_args!("fatal: {message}"));
    arch::power_off(exit::FATAL)
}

/// From boot to power-off, for a native function.
pub fn run(cmdline: &str) -> ! {
    let devices = virtio::scan();
    if let Some(transport) = devices.console {
        match VirtIOConsole::new(transport) {
            Ok(device) => console::attach(device),
            Err(e) => console::kernel_line(format_args!("virtio console unusable: {e:?}")),
        }
    }
    // The environment is not on the command line, where anyone on the
    // host could read it, but in a fw_cfg file.
    let env = crate::fwcfg::read_file(ENV_FW_CFG_NAME).unwrap_or_default();
    let Ok(env) = core::str::from_utf8(&env) else {
        fatal("the environment file is not UTF-8")
    };
    let config: &'static BootConfig = match BootConfig::decode_with_env(cmdline, env) {
        Ok(config) => Box::leak(Box::new(config)),
        Err(e) => fatal(&format!("{e}")),
    };
    let Some(nic) = devices.net else {
        fatal("no virtio-net device")
    };
    clock::finish_calibration();
    let conn = match Connection::open(
        nic,
        config.guest_mac,
        config.guest_ip,
        config.prefix_len,
        config.host_ip,
        config.api_port,
    ) {
        Ok(conn) => conn,
        Err(e) => fatal(&format!("cannot reach the runtime API: {e}")),
    };
    let [a, b, c, d] = config.host_ip;
    let host = format!("{a}.{b}.{c}.{d}:{}", config.api_port);
    CLIENT.with(|client| {
        *client = Some(Client {
            conn,
            host,
            request_id: None,
        })
    });

    let (event, ctx) = next_event(config);
    // SAFETY: the symbol is defined by `entry!` with exactly this signature.
    let result = unsafe { __mayfly_handler(&event, &ctx) };
    drop(event);
    CLIENT
        .with(|client| {
            let client = client.as_mut().expect("client set above");
            // The host ends the VM as soon as the result arrives: the log
            // must be out before it.
            console::flush();
            match result {
                Ok(body) => {
                    let path = format!("{}{}/response", api::INVOCATION_PREFIX, ctx.request_id());
                    client.request("POST", &path, &[], &body);
                }
                Err(e) => client.post_error(&e.error_type, &e.error_message),
            }
            client.finish()
        })
        .unwrap_or_else(|| fatal("runtime client in use"))
}

/// Asks for the event and builds its context.
fn next_event(config: &'static BootConfig) -> (Vec<u8>, Context) {
    CLIENT
        .with(|client| {
            let client = client.as_mut().expect("client set before the first event");
            let response = client.request("GET", api::NEXT_PATH, &[], &[]);
            if response.status != 200 {
                fatal(&format!("runtime API answered {} to next", response.status));
            }
            let header = |name: &str| response.header(name).unwrap_or("").to_string();
            let number = |name: &str| {
                response
                    .header(name)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            let request_id = header(HEADER_REQUEST_ID);
            client.request_id = Some(request_id.clone());
            let ctx = Context::new(
                request_id,
                header(HEADER_FUNCTION_ARN),
                header(HEADER_TRACE_ID),
                number(HEADER_DEADLINE_MS),
                number(HEADER_HOST_CLOCK_MS),
                config,
            );
            (response.body, ctx)
        })
        .unwrap_or_else(|| fatal("runtime client in use"))
}

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    if PANICKING.swap(true, Ordering::Relaxed) {
        console::kernel_line(format_args!("panic while reporting a panic"));
        arch::power_off(exit::PANIC);
    }
    let message = info.message();
    let out_of_memory = heap::allocation_failed();
    if out_of_memory {
        heap::release_reserve();
    }
    let text = match info.location() {
        Some(loc) => format!("{message} at {}:{}", loc.file(), loc.line()),
        None => format!("{message}"),
    };
    let error_type = if out_of_memory {
        api::ERROR_OUT_OF_MEMORY
    } else {
        api::ERROR_PANIC
    };
    crate::log!("{error_type}: {text}");
    console::flush();
    let posted = CLIENT.with(|client| match client {
        Some(client) => {
            client.post_error(error_type, &text);
            client.finish()
        }
        None => false,
    });
    console::flush();
    if posted.is_none() {
        console::kernel_line(format_args!("panic inside the runtime client"));
    }
    console::early_write(&text);
    console::early_write("\n");
    // A Linux program has no runtime client in the kernel: its VM ends
    // with the code that says why, for the host to report.
    arch::power_off(if out_of_memory {
        exit::OUT_OF_MEMORY
    } else {
        exit::PANIC
    })
}
