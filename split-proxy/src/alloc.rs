//! The process allocator: mimalloc, entered through its plain `mi_malloc` for the common
//! case.
//!
//! The `mimalloc` crate's `GlobalAlloc` passes every request to `mi_malloc_aligned`, even
//! when the alignment is the 16 bytes (or less) that `mi_malloc` guarantees anyway. In
//! mimalloc 3 that call only hits the fast path when the size class's current page has a
//! free block; otherwise it falls back to an over-allocation of `size + align - 1` in a
//! larger size class, which cost about 1,300 instructions per proxied request
//! (`bench/profile.sh`). Small alignments therefore go to `mi_malloc`/`mi_realloc`, the
//! same rule the `mimalloc` crate used before it switched; larger ones (tokio's
//! cache-padded structures) keep the aligned entry points.
//!
//! The only module of the workspace allowed `unsafe`: a `GlobalAlloc` is an unsafe trait
//! and mimalloc is reached over FFI.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as ffi;

/// Alignment every `mi_malloc` block of at least this size already has (`MI_MAX_ALIGN_SIZE`).
const MIN_ALIGN: usize = 16;

/// mimalloc as the global allocator; see the module comment.
pub struct Mimalloc;

/// Whether `mi_malloc` alone satisfies `layout`: blocks are aligned to 16 bytes, or to
/// their size when smaller.
#[inline]
fn plain(layout: &Layout) -> bool {
    layout.align() <= MIN_ALIGN && layout.align() <= layout.size()
}

// SAFETY: every pointer handed out comes from mimalloc with at least the requested size and
// alignment (`plain` only admits layouts `mi_malloc` guarantees), and `dealloc`/`realloc`
// only receive pointers this allocator returned, which `mi_free`/`mi_realloc*` accept.
unsafe impl GlobalAlloc for Mimalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain FFI calls; mimalloc accepts any size (NULL on failure).
        unsafe {
            if plain(&layout) {
                ffi::mi_malloc(layout.size()).cast()
            } else {
                ffi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        unsafe {
            if plain(&layout) {
                ffi::mi_zalloc(layout.size()).cast()
            } else {
                ffi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc contract).
        unsafe { ffi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let grown = Layout::from_size_align(new_size, layout.align());
        // SAFETY: `ptr` came from this allocator; the new block keeps the old alignment
        // (`plain` is checked against the new size, since a smaller block may be less aligned).
        unsafe {
            match grown {
                Ok(grown) if plain(&grown) => {
                    ffi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
                }
                _ => ffi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocation, zeroing, growth and shrinking keep the requested alignment and contents,
    /// for layouts on both sides of the `plain` rule.
    #[test]
    fn layouts_keep_alignment_and_contents() {
        let a = Mimalloc;
        for &(size, align) in &[
            (1, 1),
            (8, 8),
            (24, 8),
            (100, 16),
            (4, 8),
            (64, 64),
            (300, 128),
        ] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero sizes; every pointer is freed with this allocator.
            unsafe {
                let z = a.alloc_zeroed(layout);
                assert!(!z.is_null());
                assert_eq!(z as usize % align, 0, "zeroed {size}/{align}");
                assert!((0..size).all(|i| *z.add(i) == 0));
                a.dealloc(z, layout);

                let p = a.alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "alloc {size}/{align}");
                for i in 0..size {
                    *p.add(i) = i as u8;
                }
                let big = a.realloc(p, layout, size * 40);
                assert_eq!(big as usize % align, 0, "grown {size}/{align}");
                assert!((0..size).all(|i| *big.add(i) == i as u8));
                let grown = Layout::from_size_align(size * 40, align).unwrap();
                let small = a.realloc(big, grown, size.div_ceil(2));
                assert_eq!(small as usize % align, 0, "shrunk {size}/{align}");
                assert!((0..size.div_ceil(2)).all(|i| *small.add(i) == i as u8));
                a.dealloc(
                    small,
                    Layout::from_size_align(size.div_ceil(2), align).unwrap(),
                );
            }
        }
    }
}
