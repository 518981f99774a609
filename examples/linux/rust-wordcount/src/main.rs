//! A word count on the official `lambda_runtime` crate that uses every CPU
//! it has: the event `{"text": "...", "repeat": N}` stands for its text
//! repeated N times (`repeat` defaults to 1, so that a small event can ask
//! for a lot of work); the text is cut at whitespace into as many chunks as
//! `std::thread::available_parallelism()` says, each chunk counted on its
//! own thread, and the answer is `{"words": W, "distinct": D, "threads":
//! K}`: W words in all (the text's words times N), D different words, K
//! threads. Nothing in it knows about Mayfly.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::thread;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
struct Request {
    text: String,
    #[serde(default = "one")]
    repeat: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, PartialEq, Eq, Serialize)]
struct Response {
    words: u64,
    distinct: usize,
    threads: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await?;
    Ok(())
}

async fn handler(event: LambdaEvent<Request>) -> Result<Response, Error> {
    let threads = thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let Request { text, repeat } = event.payload;
    // The runtime has nothing else to do while one event is handled: the
    // counting threads may have the whole machine.
    Ok(count(&text, repeat, threads))
}

/// Counts `text` repeated `repeat` times on `threads` threads.
fn count(text: &str, repeat: u32, threads: usize) -> Response {
    let chunks = split(text, threads);
    let counted: Vec<HashMap<&str, u64>> = thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| scope.spawn(move || count_chunk(chunk, repeat)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a counting thread panicked"))
            .collect()
    });
    let mut all: HashMap<&str, u64> = HashMap::new();
    for counts in counted {
        for (word, n) in counts {
            *all.entry(word).or_default() += n;
        }
    }
    Response {
        words: all.values().sum(),
        distinct: all.len(),
        threads: chunks.len(),
    }
}

/// How often each word of `chunk` occurs in it, counted `repeat` times
/// over.
fn count_chunk(chunk: &str, repeat: u32) -> HashMap<&str, u64> {
    let mut counts = HashMap::new();
    for _ in 0..repeat {
        for word in chunk.split_whitespace() {
            *counts.entry(word).or_default() += 1;
        }
    }
    counts
}

/// `text` cut into `n` (at least one) pieces of about the same length,
/// each cut at a whitespace character, so that no word is split; pieces
/// may be empty when the text is short.
fn split(text: &str, n: usize) -> Vec<&str> {
    let n = n.max(1);
    let mut pieces = Vec::with_capacity(n);
    let mut start = 0;
    for i in 1..n {
        let mut cut = (text.len() * i / n).max(start);
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        // Forward to the next whitespace (or the end).
        cut = text[cut..]
            .find(char::is_whitespace)
            .map_or(text.len(), |at| cut + at);
        pieces.push(&text[start..cut]);
        start = cut;
    }
    pieces.push(&text[start..]);
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pieces_cover_the_text_and_split_no_word() {
        let text = "the quick  brown fox\tjumps over\nthe lazy dög — ünïcode ✓ ok";
        for n in 1..=12 {
            let pieces = split(text, n);
            assert_eq!(pieces.len(), n);
            assert_eq!(pieces.concat(), text, "{n}");
            let words: Vec<&str> = pieces.iter().flat_map(|p| p.split_whitespace()).collect();
            assert_eq!(words, text.split_whitespace().collect::<Vec<_>>(), "{n}");
        }
        assert_eq!(split("", 3), ["", "", ""]);
        assert_eq!(split("one", 0), ["one"]);
    }

    #[test]
    fn counts_words_and_distinct_words_on_any_number_of_threads() {
        let text = "a b c a b a\nd  e\t";
        for threads in 1..=6 {
            assert_eq!(
                count(text, 1, threads),
                Response {
                    words: 8,
                    distinct: 5,
                    threads
                }
            );
            assert_eq!(count(text, 1000, threads).words, 8000);
            assert_eq!(count(text, 1000, threads).distinct, 5);
        }
        assert_eq!(
            count("", 5, 2),
            Response {
                words: 0,
                distinct: 0,
                threads: 2
            }
        );
    }

    #[test]
    fn repeat_defaults_to_one() {
        let request: Request = serde_json::from_str(r#"{"text": "x y"}"#).unwrap();
        assert_eq!(request.repeat, 1);
        let request: Request = serde_json::from_str(r#"{"text": "x", "repeat": 7}"#).unwrap();
        assert_eq!(request.repeat, 7);
        let answer = serde_json::to_value(count("x y x", 2, 2)).unwrap();
        assert_eq!(
            answer,
            serde_json::json!({"words": 6, "distinct": 2, "threads": 2})
        );
    }
}
