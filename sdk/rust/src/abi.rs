//! Implementation of the exports that `export_module!` defines. Not a stable API: modules use
//! the macro, not these functions.
//!
//! Every block handed to the host (input buffers, result buffers, the `WasmResult`) comes from
//! [`alloc`] and is freed by [`dealloc`] with the same size, so all use one layout rule.

use std::alloc::Layout;
use std::io::Write;
use std::{mem, ptr, slice, str};

use serde::Serialize;

use crate::{codec, IntoInitResult, IntoProcessResult, Message};

/// Alignment of every block from `alloc`; enough for `WasmResult` and what malloc gives anyway.
const BLOCK_ALIGN: usize = 8;

/// Where an encoded result lies in guest memory. On wasm32 this is the ABI's 8-byte
/// `{u32 ptr, u32 len}`, little-endian.
#[repr(C)]
pub struct WasmResult {
    /// Start of the encoded result.
    pub ptr: *mut u8,
    /// Length of the encoded result in bytes.
    pub len: usize,
}

#[cfg(target_arch = "wasm32")]
const _: () = assert!(mem::size_of::<WasmResult>() == 8);

fn block_layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size, BLOCK_ALIGN).ok()
}

/// Allocates `size` bytes aligned to 8. Returns null when memory is exhausted, and a dangling,
/// non-null pointer for size 0 (which `dealloc` ignores).
pub fn alloc(size: usize) -> *mut u8 {
    match block_layout(size) {
        Some(_) if size == 0 => BLOCK_ALIGN as *mut u8,
        // SAFETY: the layout has a non-zero size.
        Some(layout) => unsafe { std::alloc::alloc(layout) },
        None => ptr::null_mut(),
    }
}

/// Frees a block from [`alloc`] given the size it was allocated with.
///
/// # Safety
/// `ptr` must come from `alloc(size)` and not have been freed; null or size 0 does nothing.
pub unsafe fn dealloc(ptr: *mut u8, size: usize) {
    if ptr.is_null() || size == 0 {
        return;
    }
    if let Some(layout) = block_layout(size) {
        std::alloc::dealloc(ptr, layout);
    }
}

/// The input the host placed at `ptr`; empty when `ptr` is null.
///
/// # Safety
/// `ptr..ptr + len` must be readable guest memory for the duration of the call.
unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        slice::from_raw_parts(ptr, len)
    }
}

/// Encodes `value` into a block from `alloc`, adds the `WasmResult` describing it, and returns
/// that; null when the guest runs out of memory (the host reports a module error).
fn publish<T: Serialize + ?Sized>(value: &T) -> *mut WasmResult {
    let len = match codec::encoded_len(value) {
        Ok(len) => len,
        Err(_) => return ptr::null_mut(),
    };
    let data = alloc(len);
    if data.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: `data` is a fresh block of `len` bytes (or dangling with len 0, never written).
    let buffer = unsafe { slice::from_raw_parts_mut(data, len) };
    let result = alloc(mem::size_of::<WasmResult>()) as *mut WasmResult;
    if codec::encode_into(value, buffer).is_err() || result.is_null() {
        // SAFETY: both came from `alloc` with these sizes (or are null).
        unsafe {
            dealloc(data, len);
            dealloc(result as *mut u8, mem::size_of::<WasmResult>());
        }
        return ptr::null_mut();
    }
    // SAFETY: `result` is a fresh block, sized and aligned for a `WasmResult`.
    unsafe { result.write(WasmResult { ptr: data, len }) };
    result
}

/// `process_message`: decode one message, process it, publish the result.
///
/// # Safety
/// `ptr..ptr + len` must be readable guest memory. The host keeps ownership of it.
pub unsafe fn process_message<F, R>(ptr: *const u8, len: usize, process: F) -> *mut WasmResult
where
    F: FnOnce(Message) -> R,
    R: IntoProcessResult,
{
    publish(&codec::process_encoded(input(ptr, len), process))
}

/// `process_batch`: decode a batch, process each message, publish one result per message.
///
/// # Safety
/// `ptr..ptr + len` must be readable guest memory. The host keeps ownership of it.
pub unsafe fn process_batch<F, R>(ptr: *const u8, len: usize, process: F) -> *mut WasmResult
where
    F: FnMut(Message) -> R,
    R: IntoProcessResult,
{
    publish(&codec::process_encoded_batch(input(ptr, len), process))
}

/// `init_module`: hand the configuration text to `init`; 1 when accepted, 0 when rejected, with
/// the reason written to stderr (the broker's module log).
///
/// # Safety
/// `ptr..ptr + len` must be readable guest memory. The host keeps ownership of it.
pub unsafe fn init_module<F, R>(ptr: *const u8, len: usize, init: F) -> i32
where
    F: FnOnce(Option<&str>) -> R,
    R: IntoInitResult,
{
    let outcome = if len == 0 {
        init(None).into_init_result()
    } else {
        match str::from_utf8(input(ptr, len)) {
            Ok(config) => init(Some(config)).into_init_result(),
            Err(error) => Err(format!("configuration is not UTF-8: {error}")),
        }
    };
    match outcome {
        Ok(()) => 1,
        Err(reason) => {
            // One write, so the broker logs one line.
            let line = format!("init_module: {reason}\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            0
        }
    }
}

/// Accepts exactly the functions `export_module!` can export; does nothing at run time.
pub fn check_module_functions<P, R, I, S>(_process: P, _init: I)
where
    P: FnMut(Message) -> R,
    R: IntoProcessResult,
    I: FnOnce(Option<&str>) -> S,
    S: IntoInitResult,
{
}

/// The init function used when a module has none: accepts anything.
pub fn accept_no_config(_config: Option<&str>) {}

/// `_initialize`: run the static constructors the linker collected, once.
#[cfg(target_arch = "wasm32")]
pub fn initialize() {
    use std::sync::atomic::{AtomicBool, Ordering};

    extern "C" {
        fn __wasm_call_ctors();
    }
    static INITIALIZED: AtomicBool = AtomicBool::new(false);
    if !INITIALIZED.swap(true, Ordering::Relaxed) {
        // SAFETY: the linker-generated constructor list, run exactly once per instance.
        unsafe { __wasm_call_ctors() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProcessResult;

    /// Plays the host: copy `input` in, call `export`, copy the result out, free everything.
    fn call(input: &[u8], export: impl FnOnce(*const u8, usize) -> *mut WasmResult) -> Vec<u8> {
        let in_ptr = alloc(input.len());
        unsafe { ptr::copy_nonoverlapping(input.as_ptr(), in_ptr, input.len()) };
        let result = export(in_ptr, input.len());
        assert!(!result.is_null());
        unsafe {
            let WasmResult { ptr: data, len } = result.read();
            let output = slice::from_raw_parts(data, len).to_vec();
            dealloc(data, len);
            dealloc(result as *mut u8, mem::size_of::<WasmResult>());
            dealloc(in_ptr, input.len());
            output
        }
    }

    fn tag(mut message: Message) -> Message {
        message.set_header("seen", "yes");
        message
    }

    #[test]
    fn process_message_round_trip() {
        let message = Message::new("hello").with_timestamp(42);
        let input = codec::encode(&message).unwrap();
        let output = call(&input, |p, l| unsafe { process_message(p, l, tag) });
        let result: ProcessResult = codec::decode(&output).unwrap();
        assert_eq!(result, ProcessResult::forward(tag(message)));
    }

    #[test]
    fn process_message_reports_garbage() {
        let output = call(b"garbage", |p, l| unsafe { process_message(p, l, tag) });
        let result: ProcessResult = codec::decode(&output).unwrap();
        assert!(result.error.is_some());
    }

    #[test]
    fn process_batch_round_trip() {
        let batch = vec![Message::new("a"), Message::new("b")];
        let input = codec::encode(&batch).unwrap();
        let output = call(&input, |p, l| unsafe { process_batch(p, l, tag) });
        let results: Vec<ProcessResult> = codec::decode(&output).unwrap();
        let expected: Vec<_> = batch.into_iter().map(|m| ProcessResult::forward(tag(m))).collect();
        assert_eq!(results, expected);
    }

    #[test]
    fn init_module_outcomes() {
        let strict = |config: Option<&str>| -> Result<(), String> {
            match config {
                None | Some("{}") => Ok(()),
                Some(other) => Err(format!("unexpected {other}")),
            }
        };
        let good = b"{}";
        let bad = b"[1]";
        let not_utf8 = b"\xff";
        unsafe {
            assert_eq!(init_module(ptr::null(), 0, strict), 1);
            assert_eq!(init_module(good.as_ptr(), good.len(), strict), 1);
            assert_eq!(init_module(bad.as_ptr(), bad.len(), strict), 0);
            assert_eq!(init_module(not_utf8.as_ptr(), 1, accept_no_config), 0);
            assert_eq!(init_module(bad.as_ptr(), bad.len(), accept_no_config), 1);
        }
    }

    #[test]
    fn zero_size_blocks() {
        let block = alloc(0);
        assert!(!block.is_null());
        unsafe { dealloc(block, 0) };
    }
}
