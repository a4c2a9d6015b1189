/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Find-first-set on a u64 by de Bruijn multiplication. clang 14's BPF
 * backend crashes on __builtin_ctzll, so the index is computed by hand:
 * isolating the lowest set bit (w & -w) gives a power of two; multiplying
 * the de Bruijn constant by it shifts a unique 6-bit window into the top
 * bits, which the table maps back to the bit index. Plain C: the C++ tests
 * include this header to check the table against std::countr_zero.
 */
#ifndef SLUICE_XDP_FILTER_BITS_H
#define SLUICE_XDP_FILTER_BITS_H

#define SLUICE_DEBRUIJN64 0x03f79d71b4ca8b09ULL
#define SLUICE_DEBRUIJN64_SHIFT 58 /* 64 - log2(64): keeps the 6-bit window */
#define SLUICE_DEBRUIJN64_TABLE                                                \
	{  0,  1, 56,  2, 57, 49, 28,  3, 61, 58, 42, 50, 38, 29, 17,  4,  \
	  62, 47, 59, 36, 45, 43, 51, 22, 53, 39, 33, 30, 24, 18, 12,  5,  \
	  63, 55, 48, 27, 60, 41, 37, 16, 46, 35, 44, 21, 52, 32, 23, 11,  \
	  54, 26, 40, 15, 34, 20, 31, 10, 25, 14, 19,  9, 13,  8,  7,  6 }

/* Table slot of the lowest set bit of a non-zero w (always 0..63). */
#define SLUICE_DEBRUIJN64_SLOT(w)                                              \
	((((w) & (0ULL - (w))) * SLUICE_DEBRUIJN64) >> SLUICE_DEBRUIJN64_SHIFT)

#endif /* SLUICE_XDP_FILTER_BITS_H */
