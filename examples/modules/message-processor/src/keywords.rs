//! ASCII case-insensitive search for a small set of keywords in one pass over the text, without
//! copying or folding the text.

/// Bytes examined per step of the candidate scan (one bit each in a `u32` mask).
const CHUNK_LEN: usize = 32;

/// Keywords in ranked groups, matched ASCII case-insensitively; bytes outside ASCII must match
/// exactly. A search answers with the best (lowest) group that occurs anywhere in the text.
#[derive(Debug, Clone)]
pub struct KeywordSet {
    /// `(group, keyword)`, keyword ASCII lower-cased and not empty, sorted by group.
    keywords: Vec<(usize, Vec<u8>)>,
    /// `true` for every byte (either case) that starts a keyword.
    is_first_byte: [bool; 256],
}

impl KeywordSet {
    /// One group of keywords; empty keywords are left out (they would match everything).
    pub fn new<I, K>(keywords: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<[u8]>,
    {
        Self::ranked([keywords])
    }

    /// Groups of keywords, best first; empty keywords are left out.
    pub fn ranked<G, I, K>(groups: G) -> Self
    where
        G: IntoIterator<Item = I>,
        I: IntoIterator<Item = K>,
        K: AsRef<[u8]>,
    {
        let keywords: Vec<(usize, Vec<u8>)> = groups
            .into_iter()
            .enumerate()
            .flat_map(|(group, keywords)| {
                keywords
                    .into_iter()
                    .map(move |keyword| (group, keyword.as_ref().to_ascii_lowercase()))
            })
            .filter(|(_, keyword)| !keyword.is_empty())
            .collect();
        let mut is_first_byte = [false; 256];
        for (_, keyword) in &keywords {
            is_first_byte[usize::from(keyword[0])] = true;
            is_first_byte[usize::from(keyword[0].to_ascii_uppercase())] = true;
        }
        KeywordSet {
            keywords,
            is_first_byte,
        }
    }

    /// Whether `text` contains any keyword.
    pub fn is_found_in(&self, text: &[u8]) -> bool {
        self.best_group_in(text).is_some()
    }

    /// The best group with a keyword in `text`, if any.
    pub fn best_group_in(&self, text: &[u8]) -> Option<usize> {
        let mut best = None;
        for (chunk_index, chunk) in text.chunks(CHUNK_LEN).enumerate() {
            let mut candidates = self.candidate_mask(chunk);
            while candidates != 0 {
                let start = chunk_index * CHUNK_LEN + candidates.trailing_zeros() as usize;
                candidates &= candidates - 1;
                if let Some(group) = self.group_starting(&text[start..], best) {
                    if group == 0 {
                        return Some(0);
                    }
                    best = Some(group);
                }
            }
        }
        best
    }

    /// Bit `i` set when `chunk[i]` may start a keyword; branch-free.
    fn candidate_mask(&self, chunk: &[u8]) -> u32 {
        chunk.iter().enumerate().fold(0, |mask, (index, &byte)| {
            mask | (u32::from(self.is_first_byte[usize::from(byte)]) << index)
        })
    }

    /// The best group, better than `better_than`, with a keyword at the start of `text`.
    fn group_starting(&self, text: &[u8], better_than: Option<usize>) -> Option<usize> {
        self.keywords
            .iter()
            .take_while(|(group, _)| better_than.map_or(true, |best| *group < best))
            .find(|(_, keyword)| {
                text.get(..keyword.len())
                    .map_or(false, |candidate| candidate.eq_ignore_ascii_case(keyword))
            })
            .map(|(group, _)| *group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_ignoring_ascii_case() {
        let set = KeywordSet::new(["spam", "Test-Delete"]);
        assert!(set.is_found_in(b"this is SPAM"));
        assert!(set.is_found_in(b"sPaM"));
        assert!(set.is_found_in(b"please TEST-delete me"));
        assert!(!set.is_found_in(b"spa m, test delete"));
        assert!(!set.is_found_in(b"spa"));
        assert!(!set.is_found_in(b""));
    }

    #[test]
    fn matches_across_chunk_boundaries() {
        let set = KeywordSet::new(["spam"]);
        for offset in 0..80 {
            let mut text = vec![b'.'; offset];
            text.extend_from_slice(b"SpAm");
            text.extend_from_slice(&[b'.'; 7]);
            assert!(set.is_found_in(&text), "offset {offset}");
            assert!(!set.is_found_in(&text[..offset + 3]), "offset {offset}");
        }
    }

    #[test]
    fn empty_keywords_are_ignored() {
        let set = KeywordSet::new(["", "x"]);
        assert!(!set.is_found_in(b"abc"));
        assert!(set.is_found_in(b"aXc"));
        assert!(!KeywordSet::new(Vec::<String>::new()).is_found_in(b"anything"));
    }

    #[test]
    fn non_ascii_bytes_match_exactly() {
        let set = KeywordSet::new(["café"]);
        assert!(set.is_found_in("un CAFé noir".as_bytes()));
        assert!(!set.is_found_in("un CAFÉ noir".as_bytes()));
    }

    #[test]
    fn best_group_wins_wherever_it_occurs() {
        let set = KeywordSet::ranked([vec![" the "], vec![" la ", " el "], vec![" le "]]);
        assert_eq!(set.best_group_in(b"a le b la c THE d"), Some(0));
        assert_eq!(set.best_group_in(b"a le b La c"), Some(1));
        assert_eq!(set.best_group_in(b"a le b"), Some(2));
        assert_eq!(set.best_group_in(b"nothing here"), None);
    }
}
