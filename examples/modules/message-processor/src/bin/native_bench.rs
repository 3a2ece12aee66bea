//! Native throughput of the message processor, for comparison with its wasm build.
//!
//! Usage: `native_bench --input FILE --seconds S`, where FILE holds a bincode `Vec<Message>`.
//! Each iteration does what one wasm `process_message` call does inside the guest: decode one
//! pre-encoded message, process it with the default configuration, encode the result. After one
//! untimed pass over the messages, it cycles through them for about S seconds and prints one
//! JSON line.

use std::process::ExitCode;
use std::time::{Duration, Instant};
use std::{env, fs, mem, ptr};

use wasmq_module::{codec, Message};

/// Iterations between two reads of the clock.
const ITERATIONS_PER_CLOCK_CHECK: u64 = 64;
/// Longest run accepted.
const MAX_SECONDS: f64 = 86_400.0;

struct Options {
    input: String,
    seconds: f64,
}

fn parse_options() -> Result<Options, String> {
    let mut input = None;
    let mut seconds = None;
    let mut args = env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--input" => input = Some(value),
            "--seconds" => {
                let parsed: f64 = value
                    .parse()
                    .map_err(|_| format!("--seconds: not a number: {value}"))?;
                if !(parsed > 0.0 && parsed <= MAX_SECONDS) {
                    return Err(format!("--seconds must be in (0, {MAX_SECONDS}], got {value}"));
                }
                seconds = Some(parsed);
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(Options {
        input: input.ok_or("--input is required")?,
        seconds: seconds.ok_or("--seconds is required")?,
    })
}

/// Keeps `value` observable so the optimiser cannot drop the work that produced it.
fn keep<T>(value: T) -> T {
    // SAFETY: reads an initialised value, then forgets the original so it is dropped once.
    let kept = unsafe { ptr::read_volatile(&value) };
    mem::forget(value);
    kept
}

/// One guest `process_message` call: decode, process, encode; returns the encoded length.
fn process_one(encoded_message: &[u8]) -> usize {
    let result = codec::process_encoded(encoded_message, message_processor::process);
    match codec::encode(&result) {
        Ok(encoded_result) => keep(encoded_result).len(),
        Err(_) => 0,
    }
}

fn run(options: &Options) -> Result<String, String> {
    let bytes = fs::read(&options.input)
        .map_err(|error| format!("cannot read {}: {error}", options.input))?;
    let messages: Vec<Message> = codec::decode(&bytes)
        .map_err(|error| format!("{} is not a bincode Vec<Message>: {error}", options.input))?;
    if messages.is_empty() {
        return Err(format!("{} holds no messages", options.input));
    }
    let encoded: Vec<Vec<u8>> = messages
        .iter()
        .map(codec::encode)
        .collect::<Result<_, _>>()
        .map_err(|error| format!("cannot encode a message: {error}"))?;

    for message in &encoded {
        keep(process_one(message));
    }

    let budget = Duration::from_secs_f64(options.seconds);
    let mut count: u64 = 0;
    let mut next = 0;
    let mut output_bytes: usize = 0;
    let start = Instant::now();
    let elapsed = loop {
        for _ in 0..ITERATIONS_PER_CLOCK_CHECK {
            output_bytes = output_bytes.wrapping_add(process_one(&encoded[next]));
            next = (next + 1) % encoded.len();
        }
        count += ITERATIONS_PER_CLOCK_CHECK;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            break elapsed;
        }
    };
    keep(output_bytes);

    let seconds = elapsed.as_secs_f64();
    Ok(format!(
        "{{\"module\":\"message-processor\",\"mode\":\"native\",\"messages\":{count},\
         \"seconds\":{seconds:.6},\"messages_per_second\":{:.1},\"ns_per_message\":{:.1}}}",
        count as f64 / seconds,
        elapsed.as_nanos() as f64 / count as f64,
    ))
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("native_bench: {error}\nusage: native_bench --input FILE --seconds S");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("native_bench: {error}");
            ExitCode::FAILURE
        }
    }
}
