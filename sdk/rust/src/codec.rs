//! The wire encoding (bincode 1.x default options) and the decode → process → result step that
//! the exports run, usable natively for tests and benchmarks.
//!
//! Decoding is strict: truncated input, trailing bytes, invalid UTF-8 and bool bytes other than
//! 0/1 are errors. Lengths are checked against the remaining input before anything is allocated.

use std::io;

use bincode::Options;
use serde::{Deserialize, Serialize};

use crate::{IntoProcessResult, Message, ProcessResult};

/// A decoding or encoding failure.
pub type Error = bincode::Error;

/// Smallest possible encoded `Message`: key tag, value length, header count, timestamp.
const MIN_ENCODED_MESSAGE_LEN: usize = 1 + 8 + 8 + 8;

fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .reject_trailing_bytes()
}

/// Decodes one value that must use all of `bytes`.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    options().deserialize(bytes)
}

/// The exact number of bytes `encode` produces for `value`.
pub fn encoded_len<T: Serialize + ?Sized>(value: &T) -> Result<usize, Error> {
    let len = options().serialized_size(value)?;
    usize::try_from(len).map_err(|_| Box::new(bincode::ErrorKind::SizeLimit))
}

/// Encodes `value` into `buffer`, which must be exactly `encoded_len(value)` bytes long.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, buffer: &mut [u8]) -> Result<(), Error> {
    let mut writer = SliceWriter {
        buffer,
        position: 0,
    };
    options().serialize_into(&mut writer, value)?;
    if writer.position == writer.buffer.len() {
        Ok(())
    } else {
        Err(Box::new(bincode::ErrorKind::Custom(
            "encoded value is shorter than its buffer".to_string(),
        )))
    }
}

/// Writes into a fixed buffer. Unlike `io::Write for &mut [u8]`, a write of a constant size
/// (every integer bincode emits) inlines to a plain store instead of a `memmove` call.
struct SliceWriter<'a> {
    buffer: &'a mut [u8],
    position: usize,
}

impl io::Write for SliceWriter<'_> {
    #[inline]
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    #[inline]
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let end = self.position.saturating_add(data.len());
        match self.buffer.get_mut(self.position..end) {
            Some(target) => {
                target.copy_from_slice(data);
                self.position = end;
                Ok(())
            }
            None => Err(io::ErrorKind::WriteZero.into()),
        }
    }

    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Encodes `value` into a vector allocated once at its exact size.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut buffer = vec![0; encoded_len(value)?];
    encode_into(value, &mut buffer)?;
    Ok(buffer)
}

/// What `process_message` does with its input: decodes one `Message` and runs `process` on it.
/// Input that does not decode yields a failed result naming the problem.
pub fn process_encoded<F, R>(input: &[u8], process: F) -> ProcessResult
where
    F: FnOnce(Message) -> R,
    R: IntoProcessResult,
{
    match decode::<Message>(input) {
        Ok(message) => process(message).into_process_result(),
        Err(error) => ProcessResult::failed(format!("cannot decode message: {error}")),
    }
}

/// What `process_batch` does with its input: decodes a `Vec<Message>` and runs `process` on each,
/// returning one result per message, in order.
///
/// When the batch does not decode, every result is a failure naming the problem; there is one per
/// message the batch announces when that count is plausible for the input length, else one.
pub fn process_encoded_batch<F, R>(input: &[u8], mut process: F) -> Vec<ProcessResult>
where
    F: FnMut(Message) -> R,
    R: IntoProcessResult,
{
    match decode::<Vec<Message>>(input) {
        Ok(messages) => messages
            .into_iter()
            .map(|message| process(message).into_process_result())
            .collect(),
        Err(error) => {
            let failure = ProcessResult::failed(format!("cannot decode message batch: {error}"));
            vec![failure; announced_batch_len(input).unwrap_or(1)]
        }
    }
}

/// The message count at the start of an encoded batch, if the input could hold that many.
fn announced_batch_len(input: &[u8]) -> Option<usize> {
    let count_bytes: [u8; 8] = input.get(..8)?.try_into().ok()?;
    let count = usize::try_from(u64::from_le_bytes(count_bytes)).ok()?;
    let capacity = (input.len() - 8) / MIN_ENCODED_MESSAGE_LEN;
    (1..=capacity).contains(&count).then(|| count)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `message-basic` from the ABI vectors: key "k1", value "hi", header source=test.
    const MESSAGE_BASIC: &[u8] = &[
        0x01, 0x02, 0, 0, 0, 0, 0, 0, 0, b'k', b'1', 0x02, 0, 0, 0, 0, 0, 0, 0, b'h', b'i', 0x01, 0,
        0, 0, 0, 0, 0, 0, 0x06, 0, 0, 0, 0, 0, 0, 0, b's', b'o', b'u', b'r', b'c', b'e', 0x04, 0, 0,
        0, 0, 0, 0, 0, b't', b'e', b's', b't', 0x00, 0x68, 0xe5, 0xcf, 0x8b, 0x01, 0, 0,
    ];

    /// `result-filtered` from the ABI vectors.
    const RESULT_FILTERED: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 0, 1, 0];

    fn basic_message() -> Message {
        Message::new("hi")
            .with_key("k1")
            .with_header("source", "test")
            .with_timestamp(1_700_000_000_000)
    }

    #[test]
    fn matches_the_abi_vectors() {
        assert_eq!(decode::<Message>(MESSAGE_BASIC).unwrap(), basic_message());
        assert_eq!(encode(&basic_message()).unwrap(), MESSAGE_BASIC);
        assert_eq!(encode(&ProcessResult::filtered()).unwrap(), RESULT_FILTERED);
        assert_eq!(encoded_len(&basic_message()).unwrap(), MESSAGE_BASIC.len());
        let mut short = [0; 10];
        assert!(encode_into(&basic_message(), &mut short).is_err());
        let mut long = vec![0; MESSAGE_BASIC.len() + 1];
        assert!(encode_into(&basic_message(), &mut long).is_err());
    }

    #[test]
    fn rejects_malformed_input() {
        let mut trailing = MESSAGE_BASIC.to_vec();
        trailing.push(0);
        assert!(decode::<Message>(&trailing).is_err());
        assert!(decode::<Message>(&MESSAGE_BASIC[..MESSAGE_BASIC.len() - 1]).is_err());
        let mut bad_tag = MESSAGE_BASIC.to_vec();
        bad_tag[0] = 2;
        assert!(decode::<Message>(&bad_tag).is_err());
        let mut huge_length = MESSAGE_BASIC.to_vec();
        huge_length[1..9].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<Message>(&huge_length).is_err());
        let mut bad_bool = RESULT_FILTERED.to_vec();
        bad_bool[8] = 2;
        assert!(decode::<ProcessResult>(&bad_bool).is_err());
    }

    #[test]
    fn decode_failure_becomes_a_failed_result() {
        let result = process_encoded(b"\x01", |m: Message| m);
        assert!(!result.should_continue);
        assert!(result.error.unwrap().starts_with("cannot decode message"));
    }

    #[test]
    fn batch_yields_one_result_per_message() {
        let batch = vec![basic_message(), Message::new("x"), basic_message()];
        let input = encode(&batch).unwrap();
        let results = process_encoded_batch(&input, |m: Message| {
            if m.value == b"x" {
                None
            } else {
                Some(m)
            }
        });
        assert_eq!(results.len(), 3);
        assert_eq!(results[0], ProcessResult::forward(basic_message()));
        assert_eq!(results[1], ProcessResult::filtered());
    }

    #[test]
    fn malformed_batch_fails_every_announced_message() {
        let mut input = encode(&vec![basic_message(), basic_message()]).unwrap();
        input.pop();
        let results = process_encoded_batch(&input, |m: Message| m);
        assert_eq!(results.len(), 2);
        assert!(results.iter().all(|r| r.error.is_some()));

        let mut implausible = u64::MAX.to_le_bytes().to_vec();
        implausible.extend_from_slice(&[0; 30]);
        assert_eq!(process_encoded_batch(&implausible, |m: Message| m).len(), 1);
    }

    #[test]
    fn result_conversions() {
        let failed: Result<Message, String> = Err("boom".to_string());
        assert_eq!(failed.into_process_result(), ProcessResult::failed("boom"));
        assert_eq!(Vec::<Message>::new().into_process_result(), ProcessResult::filtered());
        let split = vec![Message::new("a"), Message::new("b")].into_process_result();
        assert_eq!(split.transformed_messages.len(), 2);
        assert!(split.should_continue);
    }
}
