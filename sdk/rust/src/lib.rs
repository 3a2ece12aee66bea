//! Rust SDK for wasmq ETL modules.
//!
//! A module is a function from one [`Message`] to a [`ProcessResult`] (or anything that
//! converts into one, see [`IntoProcessResult`]). [`export_module!`] turns that function into
//! the WebAssembly exports the broker expects (`alloc`, `dealloc`, `process_message`,
//! `process_batch`, `init_module`, `_initialize`), so a module never touches raw pointers or the
//! wire encoding.
//!
//! ```ignore
//! use wasmq_module::{export_module, Message};
//!
//! fn shout(mut message: Message) -> Result<Message, String> {
//!     let text = String::from_utf8(message.value).map_err(|e| e.to_string())?;
//!     message.value = text.to_uppercase().into_bytes();
//!     Ok(message)
//! }
//!
//! export_module!(shout);
//! ```

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

#[doc(hidden)]
pub mod abi;
pub mod codec;

/// One message as the broker hands it to a module and stores it afterwards.
///
/// The field order is the wire format (bincode 1.x, default options); do not reorder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Partitioning key, if the producer set one.
    pub key: Option<String>,
    /// Payload bytes, not necessarily UTF-8.
    pub value: Vec<u8>,
    /// Header names and values; the order is not significant.
    pub headers: HashMap<String, String>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

impl Message {
    /// A message with this payload, no key, no headers and timestamp 0.
    pub fn new(value: impl Into<Vec<u8>>) -> Self {
        Message {
            value: value.into(),
            ..Message::default()
        }
    }

    /// The value of header `name`, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// Sets header `name` to `value`, replacing any previous value.
    pub fn set_header(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.headers.insert(name.into(), value.into());
    }

    /// This message with header `name` set to `value`.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_header(name, value);
        self
    }

    /// This message with the given key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// This message with the given timestamp (milliseconds since the Unix epoch).
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = timestamp_ms;
        self
    }
}

/// What a module did with one input message.
///
/// The field order is the wire format (bincode 1.x, default options); do not reorder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessResult {
    /// The outputs: none drops the message, one replaces it, several split it.
    pub transformed_messages: Vec<Message>,
    /// `false` stores the outputs as they are, skipping the pipeline's later stages.
    pub should_continue: bool,
    /// `Some` reports a failure on this message; the outputs are then ignored.
    pub error: Option<String>,
}

impl ProcessResult {
    /// Replaces the input with `message` and lets the pipeline go on.
    pub fn forward(message: Message) -> Self {
        Self::emit(vec![message])
    }

    /// Replaces the input with `messages` (none, one or several) and lets the pipeline go on.
    pub fn emit(messages: Vec<Message>) -> Self {
        ProcessResult {
            transformed_messages: messages,
            should_continue: true,
            error: None,
        }
    }

    /// Drops the input: no output, counted as filtered by the broker.
    pub fn filtered() -> Self {
        Self::emit(Vec::new())
    }

    /// Reports a failure on the input; the pipeline's error policy decides what happens to it.
    pub fn failed(error: impl Into<String>) -> Self {
        ProcessResult {
            transformed_messages: Vec::new(),
            should_continue: false,
            error: Some(error.into()),
        }
    }

    /// This result with the pipeline's later stages skipped for its outputs.
    pub fn stop_pipeline(mut self) -> Self {
        self.should_continue = false;
        self
    }
}

/// What a process function may return; each form maps to one [`ProcessResult`].
///
/// - `ProcessResult`: as is.
/// - `Message`: forwarded ([`ProcessResult::forward`]).
/// - `Option<Message>`: `None` filters the input out.
/// - `Vec<Message>`: emitted as they are (empty filters, several split).
/// - `Result<T, E>` with `T` one of these and `E: Display`: `Err` becomes
///   [`ProcessResult::failed`].
pub trait IntoProcessResult {
    /// Converts into the result sent back to the broker.
    fn into_process_result(self) -> ProcessResult;
}

impl IntoProcessResult for ProcessResult {
    fn into_process_result(self) -> ProcessResult {
        self
    }
}

impl IntoProcessResult for Message {
    fn into_process_result(self) -> ProcessResult {
        ProcessResult::forward(self)
    }
}

impl IntoProcessResult for Option<Message> {
    fn into_process_result(self) -> ProcessResult {
        match self {
            Some(message) => ProcessResult::forward(message),
            None => ProcessResult::filtered(),
        }
    }
}

impl IntoProcessResult for Vec<Message> {
    fn into_process_result(self) -> ProcessResult {
        ProcessResult::emit(self)
    }
}

impl<T: IntoProcessResult, E: fmt::Display> IntoProcessResult for Result<T, E> {
    fn into_process_result(self) -> ProcessResult {
        match self {
            Ok(value) => value.into_process_result(),
            Err(error) => ProcessResult::failed(error.to_string()),
        }
    }
}

/// What an init function may return: `bool`, `()` (always accepted) or `Result<(), E: Display>`.
///
/// A rejection makes `init_module` return 0 and writes the reason to the module's stderr, which
/// the broker logs.
pub trait IntoInitResult {
    /// `Ok` when the configuration was accepted, else the reason it was not.
    fn into_init_result(self) -> Result<(), String>;
}

impl IntoInitResult for () {
    fn into_init_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl IntoInitResult for bool {
    fn into_init_result(self) -> Result<(), String> {
        if self {
            Ok(())
        } else {
            Err("configuration rejected".to_string())
        }
    }
}

impl<E: fmt::Display> IntoInitResult for Result<(), E> {
    fn into_init_result(self) -> Result<(), String> {
        self.map_err(|error| error.to_string())
    }
}

/// Defines the module's WebAssembly exports around a process function and an optional init
/// function.
///
/// - `export_module!(process)` with `process: Fn(Message) -> impl IntoProcessResult`.
/// - `export_module!(process, init)` adds `init: FnOnce(Option<&str>) -> impl IntoInitResult`,
///   called by `init_module` with the configuration JSON text (`None` when the broker has none).
///   Configuration bytes that are not UTF-8 are rejected without calling `init`.
///
/// Use it once per crate, at the crate root or in any module. The exports exist only when
/// compiling for `wasm32`; on other targets the macro defines no symbols, so the same crate can
/// be unit-tested and benchmarked natively (the functions are still type-checked there).
#[macro_export]
macro_rules! export_module {
    ($process:expr $(,)?) => {
        $crate::export_module!($process, $crate::abi::accept_no_config);
    };
    ($process:expr, $init:expr $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            /// WASI reactor initialiser: runs static constructors once.
            #[no_mangle]
            pub extern "C" fn _initialize() {
                $crate::abi::initialize()
            }

            /// Allocates `size` bytes of guest memory for the host.
            #[no_mangle]
            pub extern "C" fn alloc(size: usize) -> *mut u8 {
                $crate::abi::alloc(size)
            }

            /// Frees a block from `alloc` (or a result buffer) given its size.
            #[no_mangle]
            pub unsafe extern "C" fn dealloc(ptr: *mut u8, size: usize) {
                $crate::abi::dealloc(ptr, size)
            }

            /// Processes one bincode `Message`; returns a pointer to `{ptr, len}` of the result.
            #[no_mangle]
            pub unsafe extern "C" fn process_message(
                ptr: *const u8,
                len: usize,
            ) -> *mut $crate::abi::WasmResult {
                $crate::abi::process_message(ptr, len, $process)
            }

            /// Processes a bincode `Vec<Message>`; the result is one `ProcessResult` per input.
            #[no_mangle]
            pub unsafe extern "C" fn process_batch(
                ptr: *const u8,
                len: usize,
            ) -> *mut $crate::abi::WasmResult {
                $crate::abi::process_batch(ptr, len, $process)
            }

            /// Applies the module configuration (UTF-8 JSON, empty for none); 1 accepted, 0 not.
            #[no_mangle]
            pub unsafe extern "C" fn init_module(ptr: *const u8, len: usize) -> i32 {
                $crate::abi::init_module(ptr, len, $init)
            }
        };

        #[cfg(not(target_arch = "wasm32"))]
        const _: () = {
            /// Type-checks the functions natively and marks them used.
            #[allow(dead_code)]
            fn check_module_functions() {
                $crate::abi::check_module_functions($process, $init);
            }
        };
    };
}
