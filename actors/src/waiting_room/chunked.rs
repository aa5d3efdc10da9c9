//! An append-mostly array in fixed-size shared chunks. Cloning it copies a
//! pointer per chunk; a write to a chunk that a clone still shares copies that
//! one chunk first. A queue actor publishes its line's tickets this way, so
//! ticket reads need no call to the actor and publishing costs no copy of the
//! line.

use std::sync::Arc;

/// Elements per chunk: a published clone makes the next write copy at most
/// this many elements.
const CHUNK: usize = 4096;

/// See the module docs.
#[derive(Debug, Clone)]
pub(super) struct Chunked<T> {
    chunks: Vec<Arc<Vec<T>>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Chunked { chunks: Vec::new(), len: 0 }
    }
}

impl<T: Copy> Chunked<T> {
    /// Elements held.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Element `i`.
    pub(super) fn get(&self, i: usize) -> Option<T> {
        (i < self.len).then(|| self.chunks[i / CHUNK][i % CHUNK])
    }

    /// The chunk at `c`, copied first if a clone shares it.
    fn own(&mut self, c: usize) -> &mut Vec<T> {
        let chunk = &mut self.chunks[c];
        if Arc::get_mut(chunk).is_none() {
            let mut copy = Vec::with_capacity(CHUNK);
            copy.extend_from_slice(chunk);
            *chunk = Arc::new(copy);
        }
        Arc::get_mut(chunk).expect("a chunk just copied has one owner")
    }

    /// Appends `v`.
    pub(super) fn push(&mut self, v: T) {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Arc::new(Vec::with_capacity(CHUNK)));
        }
        let last = self.chunks.len() - 1;
        self.own(last).push(v);
        self.len += 1;
    }

    /// Sets element `i` (< `len`).
    pub(super) fn set(&mut self, i: usize, v: T) {
        self.own(i / CHUNK)[i % CHUNK] = v;
    }

    /// The elements in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = T> + '_ {
        self.chunks.iter().flat_map(|c| c.iter().copied())
    }

    /// Like `slice::partition_point`: the index of the first element for which
    /// `pred` is false, the elements being partitioned by it.
    pub(super) fn partition_point(&self, pred: impl Fn(&T) -> bool) -> usize {
        let c = self.chunks.partition_point(|chunk| chunk.last().is_some_and(&pred));
        self.chunks.get(c).map_or(self.len, |chunk| c * CHUNK + chunk.partition_point(&pred))
    }

    /// Bytes held on the heap (capacity, not length).
    pub(super) fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * size_of::<Arc<Vec<T>>>()
            + self.chunks.iter().map(|c| c.capacity() * size_of::<T>()).sum::<usize>()
    }

    /// A plain copy.
    pub(super) fn to_vec(&self) -> Vec<T> {
        self.iter().collect()
    }
}

impl<T: Copy> FromIterator<T> for Chunked<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut out = Chunked::default();
        for v in iter {
            out.push(v);
        }
        out
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_clone_keeps_its_values_while_the_original_changes() {
        let mut a: Chunked<u32> = (0..10_000).collect();
        let published = a.clone();
        a.set(5, 99);
        a.set(9_000, 98);
        a.push(10_000);
        assert_eq!((published.get(5), published.get(9_000), published.get(10_000)), (Some(5), Some(9_000), None));
        assert_eq!((a.get(5), a.get(9_000), a.get(10_000), a.len()), (Some(99), Some(98), Some(10_000), 10_001));
        assert!(published.iter().eq(0..10_000));
        assert_eq!(a.to_vec().len(), 10_001);
    }

    #[test]
    fn partition_point_spans_chunks() {
        let a: Chunked<u32> = (0..10_000).map(|i| i * 2).collect();
        for probe in [0, 1, 2, 8_191, 8_192, 8_193, 19_998, 19_999, 20_000] {
            let expected = (0..10_000u32).map(|i| i * 2).collect::<Vec<_>>().partition_point(|v| *v < probe);
            assert_eq!(a.partition_point(|v| *v < probe), expected, "probe {probe}");
        }
        assert_eq!(Chunked::<u32>::default().partition_point(|_| true), 0);
    }
}
