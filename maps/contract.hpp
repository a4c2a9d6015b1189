#pragma once
// C++ view of the kernel/user contract. Including this instead of
// sluice_maps.h directly makes every build check the layout the BPF side uses:
// a field moved or resized in sluice_maps.h fails to compile here.
#include <linux/bpf.h>

#include <cstddef>
#include <cstdint>

#include "sluice_maps.h"

namespace sluice::contract {

static_assert(int{SLUICE_VERDICT_ABORTED} == int{XDP_ABORTED});
static_assert(int{SLUICE_VERDICT_DROP} == int{XDP_DROP});
static_assert(int{SLUICE_VERDICT_PASS} == int{XDP_PASS});
static_assert(int{SLUICE_VERDICT_TX} == int{XDP_TX});
static_assert(int{SLUICE_VERDICT_REDIRECT} == int{XDP_REDIRECT});

static_assert(sizeof(sluice_counter) == 16);
static_assert(offsetof(sluice_counter, bytes) == 8);

static_assert(sizeof(sluice_config) == 32);
static_assert(offsetof(sluice_config, stages_enabled) == 4);
static_assert(offsetof(sluice_config, end_verdict) == 8);
static_assert(offsetof(sluice_config, tail_call_fail_verdict) == 12);
static_assert(offsetof(sluice_config, malformed_verdict) == 16);
static_assert(offsetof(sluice_config, non_ip_verdict) == 20);
static_assert(offsetof(sluice_config, drop_fragments) == 24);


static_assert(sizeof(sluice_pkt) == 88);
static_assert(offsetof(sluice_pkt, dst) == 16);
static_assert(offsetof(sluice_pkt, ifindex) == 32);
static_assert(offsetof(sluice_pkt, eth_proto) == 40);
static_assert(offsetof(sluice_pkt, vlan_id) == 48);
static_assert(offsetof(sluice_pkt, sport) == 52);
static_assert(offsetof(sluice_pkt, vlan_depth) == 56);
static_assert(offsetof(sluice_pkt, has_l4) == 63);
static_assert(offsetof(sluice_pkt, note) == 64);
static_assert(offsetof(sluice_pkt, stage_bank) == 84);

static_assert(sizeof(sluice_lpm_v4_key) == 8);
static_assert(sizeof(sluice_lpm_v6_key) == 20);
static_assert(offsetof(sluice_lpm_v4_key, addr) == offsetof(bpf_lpm_trie_key, data));

static_assert(sizeof(sluice_drop_event) == 32 + SLUICE_EVENT_HEAD_BYTES);
static_assert(offsetof(sluice_drop_event, head) == 32);

// ---- DIR-24-8 ----
static_assert(SLUICE_DIR24_8_TBL24_ENTRIES == 1u << 24);
static_assert(SLUICE_DIR24_8_GROUP_ENTRIES == 256);
static_assert(SLUICE_DIR24_8_TBL24_ROWS * SLUICE_DIR24_8_ROW_ENTRIES == SLUICE_DIR24_8_TBL24_ENTRIES);
// Rows are a multiple of 8 bytes: the kernel's array element stride adds no padding.
static_assert(sizeof(sluice_dir24_8_row) == 1024 && sizeof(sluice_dir24_8_row) % 8 == 0);
// Group indexes and values share a tbl24 entry: the flag must be above both.
static_assert((SLUICE_DIR24_8_TBL8_GROUPS_MAX & SLUICE_DIR24_8_GROUP_FLAG) == 0);
static_assert((SLUICE_DIR24_8_VALUE_MAX & SLUICE_DIR24_8_GROUP_FLAG) == 0);
// The flat u32 index of the last entry of the last group fits 32 bits.
static_assert(std::uint64_t{SLUICE_DIR24_8_TBL8_GROUPS_MAX} * SLUICE_DIR24_8_GROUP_ENTRIES <= 0xffffffffull);
static_assert(SLUICE_DIR24_8_TBL8_GROUPS_DEFAULT <= SLUICE_DIR24_8_TBL8_GROUPS_MAX);
// ---- end DIR-24-8 ----

// ---- filter stage ----
static_assert(sizeof(sluice_filter_bitmap) == SLUICE_FILTER_MAX_RULES / 8 + sizeof(std::uint64_t));
static_assert(SLUICE_FILTER_BITMAP_WORDS <= 64, "one summary bit per bitmap word");
static_assert((SLUICE_FILTER_MAX_RATE_CLASSES << SLUICE_FILTER_DIR_CLASS_SHIFT) <= SLUICE_DIR24_8_VALUE_MAX,
              "a prefix-list DIR-24-8 value holds any rate class");
static_assert(SLUICE_FILTER_ACTION_RATE_LIMIT <= SLUICE_FILTER_DIR_ACTION_MASK);
static_assert(SLUICE_FILTER_BLOCKLIST_TBL8_GROUPS_DEFAULT <= SLUICE_DIR24_8_TBL8_GROUPS_MAX);
static_assert(SLUICE_FILTER_BITMAP_WORDS * SLUICE_FILTER_WORD_BITS == SLUICE_FILTER_MAX_RULES);
static_assert(sizeof(sluice_filter_v4_key) == 12);
static_assert(offsetof(sluice_filter_v4_key, generation) == offsetof(bpf_lpm_trie_key, data));
static_assert(sizeof(sluice_filter_v6_key) == 24);
static_assert(sizeof(sluice_filter_verdict) == 8);
static_assert(sizeof(sluice_filter_set) == 16);
static_assert(offsetof(sluice_filter_set, skip_lookups) == 8, "was padding: older sets read 0, look everything up");
static_assert(sizeof(sluice_filter_port_bounds) == 8 + 2 * SLUICE_FILTER_PORT_BOUNDS_CAP);
static_assert(SLUICE_FILTER_PORT_BOUNDS_CAP >= SLUICE_FILTER_MAX_PORT_INTERVALS);
static_assert((1 << SLUICE_FILTER_PORT_SEARCH_STEPS) == SLUICE_FILTER_PORT_BOUNDS_CAP);
static_assert(sizeof(sluice_filter_port_index) == 2 * SLUICE_FILTER_PORT_SPACE);
static_assert(SLUICE_FILTER_MAX_PORT_INTERVALS <= 0xffff, "an interval number fits the index's u16");
static_assert(sizeof(sluice_filter_ifindex_key) == 8);
static_assert(sizeof(sluice_filter_rate_limits) == 32);
static_assert(sizeof(sluice_filter_rate_class) == 96);
static_assert(offsetof(sluice_filter_rate_class, syn_only) == 32, "the pre-aggregate layout up to defined");
static_assert(offsetof(sluice_filter_rate_class, aggregate) == 40);
static_assert(offsetof(sluice_filter_rate_class, v4_source_mask) == 72);
static_assert(sizeof(sluice_filter_rate_key) == 24);
static_assert(offsetof(sluice_filter_rate_key, ip_version) == 20);
static_assert(sizeof(sluice_filter_rate_bucket) == 24);
static_assert(sizeof(sluice_filter_rate_lock) == 64, "one lock stripe per cache line");
static_assert(sizeof(sluice_filter_rate_aggregate) == 64, "one aggregate bucket per cache line");
static_assert(offsetof(sluice_filter_rate_aggregate, bucket) == 8);
static_assert((SLUICE_FILTER_RATE_LOCKS & (SLUICE_FILTER_RATE_LOCKS - 1)) == 0, "a hash is masked to a stripe");
static_assert(SLUICE_FILTER_RATE_V4_PREFIX_DEFAULT <= 32 && SLUICE_FILTER_RATE_V6_PREFIX_DEFAULT <= 128);
static_assert(sizeof(sluice_ct_key) == 40);
static_assert(offsetof(sluice_ct_key, port_a) == 32);
static_assert(sizeof(sluice_ct_v4_key) == 16, "the compact IPv4 conntrack key: hashing cost grows with its size");
static_assert(offsetof(sluice_ct_v4_key, proto) == 12);
static_assert(sizeof(sluice_ct_entry) == 72);
static_assert(sizeof(sluice_filter_settings) == 16 + 4 * SLUICE_CT_STATE_COUNT);
static_assert(SLUICE_REASON_FILTER_LAST < SLUICE_REASON_FIRST_LB);

// ---- lb stage ----
static_assert(sizeof(sluice_lb_vip_key) == 20);
static_assert(sizeof(sluice_lb_vip) == 8);
static_assert(sizeof(sluice_lb_backend) == 32);
static_assert(sizeof(sluice_lb_flow_v4_key) == 16, "the compact IPv4 connection key");
static_assert(sizeof(sluice_lb_flow_key) == 40);
static_assert(sizeof(sluice_lb_conn) == 24);
static_assert(sizeof(sluice_lb_settings) == 56);
static_assert(sizeof(sluice_lb_counter) == 32);
static_assert(SLUICE_LB_MAGLEV_SIZE_DEFAULT <= SLUICE_LB_MAGLEV_SIZE_MAX);
static_assert(SLUICE_REASON_LB_LAST < SLUICE_REASON_FIRST_FORWARD);
static_assert(SLUICE_LB_MAX_BACKENDS <= 65536, "backend ids fit the Maglev entries with room to spare");
// ---- end lb ----

// ---- forward stage ----
static_assert(SLUICE_REASON_FWD_LAST < SLUICE_REASON_MAX);
static_assert(sizeof(sluice_fwd_nexthop) == 24);
static_assert(offsetof(sluice_fwd_nexthop, src_mac) == 8);
static_assert(offsetof(sluice_fwd_nexthop, dst_mac) == 14);
static_assert(sizeof(sluice_fwd_group_member) == 4);
static_assert(sizeof(sluice_fwd_group) == 8 + 4 * SLUICE_FWD_GROUP_MAX_MEMBERS + 2 * SLUICE_FWD_GROUP_BUCKETS);
static_assert(sizeof(sluice_fwd_group) % 8 == 0);
static_assert(offsetof(sluice_fwd_group, bucket) == 72);
static_assert(sizeof(sluice_fwd_settings) == 40 + 4 * SLUICE_FWD_MAX_CPUS);
static_assert(sizeof(sluice_fwd_settings) % 8 == 0);
static_assert(offsetof(sluice_fwd_settings, cpus) == 40);
static_assert(sizeof(sluice_fwd_icmp_bucket) == 16);
// The buckets are indexed by hash & (BUCKETS - 1); every member gets at least one.
static_assert((SLUICE_FWD_GROUP_BUCKETS & (SLUICE_FWD_GROUP_BUCKETS - 1)) == 0);
static_assert(SLUICE_FWD_GROUP_BUCKETS >= SLUICE_FWD_GROUP_MAX_MEMBERS);
// Ids fit their fields of the route value and of a group bucket (u16).
static_assert(SLUICE_FWD_MAX_NEXTHOPS - 1 <= SLUICE_FWD_TARGET_MASK && SLUICE_FWD_MAX_NEXTHOPS <= 65536);
static_assert(SLUICE_FWD_MAX_GROUPS - 1 <= SLUICE_FWD_TARGET_MASK);
static_assert(SLUICE_FWD_ROUTE_COUNTERS - 1 <= SLUICE_FWD_SLOT_MASK);
// A route value is a DIR-24-8 value: never 0 (kind != 0), never the group flag.
static_assert(SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_LOCAL, SLUICE_FWD_TARGET_MASK, SLUICE_FWD_SLOT_MASK) <=
              SLUICE_DIR24_8_VALUE_MAX);
static_assert((SLUICE_FWD_ROUTE_RESERVED_BITS & SLUICE_DIR24_8_GROUP_FLAG) != 0);
static_assert(SLUICE_FWD_ROUTE_KIND(SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_GROUP, 7, 9)) == SLUICE_FWD_KIND_GROUP);
static_assert(SLUICE_FWD_ROUTE_TARGET(SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_GROUP, 7, 9)) == 7);
static_assert(SLUICE_FWD_ROUTE_SLOT(SLUICE_FWD_ROUTE_VALUE(SLUICE_FWD_KIND_GROUP, 7, 9)) == 9);
// ---- end forward ----

static_assert(sizeof(sluice_redirect_error_key) == 16);

constexpr unsigned counter_index(unsigned verdict, unsigned reason) {
  return verdict * SLUICE_REASON_MAX + reason;
}
static_assert(counter_index(SLUICE_VERDICT_COUNT - 1, SLUICE_REASON_MAX - 1) + 1 == SLUICE_COUNTER_SLOTS);

}  // namespace sluice::contract
