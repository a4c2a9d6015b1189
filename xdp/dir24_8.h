/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * DIR-24-8 IPv4 longest-prefix match over two BPF arrays (layout and
 * constants: the DIR-24-8 section of maps/sluice_maps.h). One instance is a
 * pair of maps declared with SLUICE_DIR24_8_MAPS(); user space keeps them in
 * sync with its prefix set through mmap (maps/dir24_8.hpp).
 *
 * Why not only the LPM trie: a trie lookup walks up to 32 nodes (~110 ns at
 * 1M prefixes); here a lookup is one array load, plus a second one when the
 * address's /24 holds prefixes longer than /24. Array lookups through a
 * constant map pointer are inlined by the verifier (no helper call).
 *
 * Concurrency with the user-space writer: a tbl24 entry changes with a
 * single aligned 32-bit store, and a tbl8 group is completely filled before
 * the tbl24 store that makes it reachable (release order on the writer). The
 * reader loads the tbl24 entry once (READ_ONCE) and the tbl8 load depends on
 * it through the address, which orders the two loads on every CPU Linux runs
 * BPF on. A group unlinked by the writer is only reused after an RCU grace
 * period, so a packet that read the old tbl24 entry still finds the old
 * group contents.
 */
#ifndef SLUICE_XDP_DIR24_8_H
#define SLUICE_XDP_DIR24_8_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sluice_maps.h"

/*
 * Declares NAME_tbl24 (65536 rows of 256 u32: one entry per /24) and
 * NAME_tbl8 (GROUPS rows of 256 u32: one row per group). BPF_F_MMAPABLE:
 * user space writes the 16M-entry table through a shared mapping instead of
 * one syscall per entry. Rows, not single u32 elements, because the kernel
 * pads array elements to 8 bytes (see struct sluice_dir24_8_row).
 */
#define SLUICE_DIR24_8_MAPS_SIZED(name, groups)                                \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_ARRAY);                              \
		__uint(max_entries, SLUICE_DIR24_8_TBL24_ROWS);                \
		__uint(map_flags, BPF_F_MMAPABLE);                             \
		__type(key, __u32);                                            \
		__type(value, struct sluice_dir24_8_row);                      \
	} name##_tbl24 SEC(".maps");                                           \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_ARRAY);                              \
		__uint(max_entries, (groups));                                 \
		__uint(map_flags, BPF_F_MMAPABLE);                             \
		__type(key, __u32);                                            \
		__type(value, struct sluice_dir24_8_row);                      \
	} name##_tbl8 SEC(".maps")

#define SLUICE_DIR24_8_MAPS(name)                                              \
	SLUICE_DIR24_8_MAPS_SIZED(name, SLUICE_DIR24_8_TBL8_GROUPS_DEFAULT)

#define SLUICE_DIR24_8_ROW_MASK (SLUICE_DIR24_8_ROW_ENTRIES - 1)
/*
 * What a lookup returns when the tables are corrupt (a group index past
 * tbl8, a tbl8 entry with the group flag): never a value (values are at
 * most SLUICE_DIR24_8_VALUE_MAX) and never NO_MATCH, so a caller cannot
 * take a corrupt table for "no prefix covers the address".
 */
#define SLUICE_DIR24_8_CORRUPT 0xffffffffu

/*
 * The value of the longest prefix containing addr (network order),
 * SLUICE_DIR24_8_NO_MATCH, or SLUICE_DIR24_8_CORRUPT. Pass the maps
 * themselves (&NAME_tbl24, &NAME_tbl8) so the verifier sees constant map
 * pointers and inlines both lookups; __always_inline keeps it that way in
 * every caller.
 */
static __always_inline __u32 dir24_8_lookup(void *tbl24, void *tbl8, __be32 addr)
{
	const __u32 host = bpf_ntohl(addr);
	/* tbl24 entry (host >> 8) lives in row (host >> 16), column (host >> 8) & 255. */
	__u32 row24 = host >> (SLUICE_DIR24_8_TBL8_BITS + SLUICE_DIR24_8_TBL8_BITS);
	struct sluice_dir24_8_row *entries24 = bpf_map_lookup_elem(tbl24, &row24);

	/* Cannot fail (tbl24 covers every /16), but the verifier demands the check. */
	if (!entries24)
		return SLUICE_DIR24_8_NO_MATCH;
	/* The mask bounds the column to the row: the verifier sees offset 0..1020. */
	const __u32 column24 = (host >> SLUICE_DIR24_8_TBL8_BITS) & SLUICE_DIR24_8_ROW_MASK;
	/* One load: the flag test and the group index must come from the same value. */
	const __u32 entry = *(volatile __u32 *)&entries24->entry[column24];
	if (!(entry & SLUICE_DIR24_8_GROUP_FLAG))
		return entry;

	/* A group index beyond this map (a corrupt entry) gets NULL. */
	__u32 group = entry & ~SLUICE_DIR24_8_GROUP_FLAG;
	struct sluice_dir24_8_row *entries8 = bpf_map_lookup_elem(tbl8, &group);
	if (!entries8)
		return SLUICE_DIR24_8_CORRUPT;
	const __u32 value8 = *(volatile __u32 *)&entries8->entry[host & SLUICE_DIR24_8_ROW_MASK];
	/* tbl8 holds values only: no group chains */
	return value8 & SLUICE_DIR24_8_GROUP_FLAG ? SLUICE_DIR24_8_CORRUPT : value8;
}

/*
 * On-demand instances: user space creates a DIR-24-8 only when a prefix set
 * is big enough for it to pay (its tbl24 alone is 64 MiB) and plugs it into
 * slot i of two arrays of maps, NAME_tbl24 and NAME_tbl8 (declared by
 * SLUICE_DIR24_8_SLOT_MAPS); an empty slot means "read the LPM trie", which
 * stays the source of truth. tbl8 is plugged before tbl24 and unplugged
 * after it, so a packet that finds both slots filled finds a matching pair
 * (user space replaces a pair only by unplugging the old one and waiting
 * for an RCU grace period before plugging the new one).
 *
 * The tbl24 template has the real size and no BPF_F_INNER_MAP, so every
 * inner tbl24 has that size and the verifier inlines its lookups; tbl8 is
 * sized to the prefix set (BPF_F_INNER_MAP, a helper call, taken only for
 * /24s holding longer prefixes). Sizes, not BTF types: user space creates
 * the inner tables without BTF, and an object that names the row only here
 * would carry it as a bare forward declaration.
 */
struct sluice_dir24_8_tbl24_template {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLUICE_DIR24_8_TBL24_ROWS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct sluice_dir24_8_row));
};

struct sluice_dir24_8_tbl8_template {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE | BPF_F_INNER_MAP);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct sluice_dir24_8_row));
};

#define SLUICE_DIR24_8_SLOT_MAPS(name, slots)                                  \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);                      \
		__uint(max_entries, (slots));                                  \
		__type(key, __u32);                                            \
		__array(values, struct sluice_dir24_8_tbl24_template);         \
	} name##_tbl24 SEC(".maps");                                           \
	struct {                                                               \
		__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);                      \
		__uint(max_entries, (slots));                                  \
		__type(key, __u32);                                            \
		__array(values, struct sluice_dir24_8_tbl8_template);          \
	} name##_tbl8 SEC(".maps")

/*
 * The instance plugged into `slot` (pass &NAME_tbl24, &NAME_tbl8): 1 and
 * *value = what dir24_8_lookup() answers, or 0 when the slot is empty (or
 * only half plugged, between the two writes of a plug or unplug): then the
 * caller reads its trie, which is right too.
 */
static __always_inline int dir24_8_slot_lookup(void *outer24, void *outer8, __u32 slot, __be32 addr, __u32 *value)
{
	void *tbl24 = bpf_map_lookup_elem(outer24, &slot);

	if (!tbl24)
		return 0;
	void *tbl8 = bpf_map_lookup_elem(outer8, &slot);
	if (!tbl8)
		return 0;
	*value = dir24_8_lookup(tbl24, tbl8, addr);
	return 1;
}

#endif /* SLUICE_XDP_DIR24_8_H */
