#pragma once
// Typed handles over key/value maps: HashMap, ArrayMap, PerCpuHashMap,
// PerCpuArrayMap, LpmTrie. They are one template, KeyValueMap, specialised
// by a Kind that says which map types it accepts, whether values are per
// CPU and whether elements can be deleted; all syscalls are in map_ops.
#include <linux/bpf.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "error.hpp"
#include "map_fd.hpp"
#include "map_ops.hpp"

namespace sluice::maps {
namespace detail {

struct HashKind {
  static constexpr const char* name = "HashMap";
  static constexpr std::array types{BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH};
  static constexpr bool per_cpu = false;
  static constexpr bool deletable = true;
};
struct ArrayKind {
  static constexpr const char* name = "ArrayMap";
  static constexpr std::array types{BPF_MAP_TYPE_ARRAY};
  static constexpr bool per_cpu = false;
  static constexpr bool deletable = false;  // array slots always exist
};
struct PerCpuHashKind {
  static constexpr const char* name = "PerCpuHashMap";
  static constexpr std::array types{BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH};
  static constexpr bool per_cpu = true;
  static constexpr bool deletable = true;
};
struct PerCpuArrayKind {
  static constexpr const char* name = "PerCpuArrayMap";
  static constexpr std::array types{BPF_MAP_TYPE_PERCPU_ARRAY};
  static constexpr bool per_cpu = true;
  static constexpr bool deletable = false;
};
struct LpmTrieKind {
  static constexpr const char* name = "LpmTrie";
  static constexpr std::array types{BPF_MAP_TYPE_LPM_TRIE};
  static constexpr bool per_cpu = false;
  static constexpr bool deletable = true;
};

template <class K, class V, class Kind>
class KeyValueMap {
  // Keys are compared byte for byte by the kernel: padding holes with
  // indeterminate bytes would make equal keys differ.
  static_assert(std::has_unique_object_representations_v<K>, "map keys must have no padding holes");
  static_assert(std::is_trivially_copyable_v<K> && std::is_trivially_copyable_v<V>,
                "map keys and values are copied as bytes");

 public:
  using key_type = K;
  // Per-CPU maps: one V per possible CPU, index = CPU number.
  using value_type = std::conditional_t<Kind::per_cpu, std::vector<V>, V>;

  // Checks map type, key size and value size against K and V.
  [[nodiscard]] static Result<KeyValueMap> from(MapFd map) {
    if (auto shape = check_shape(map, Kind::name, Kind::types, sizeof(K), sizeof(V)); !shape) return shape.error();
    std::size_t cpus = 1;
    if constexpr (Kind::per_cpu) {
      auto possible = possible_cpus();
      if (!possible) return possible.error();
      cpus = *possible;
    }
    return KeyValueMap(std::move(map), cpus);
  }
  [[nodiscard]] static Result<KeyValueMap> open_pinned(const std::string& path) {
    auto map = MapFd::open_pinned(path);
    if (!map) return map.error();
    return from(std::move(*map));
  }

  // An absent key is an empty optional, not an error.
  [[nodiscard]] Result<std::optional<value_type>> lookup(const K& key) const {
    std::vector<std::byte> wire(value_wire_size());
    auto found = lookup_bytes(map_, &key, wire.data());
    if (!found) return found.error();
    if (!*found) return std::optional<value_type>{};
    return std::optional<value_type>{decode(wire.data())};
  }

  // Per-CPU maps: `value` must hold exactly cpu_count() values.
  [[nodiscard]] Result<void> update(const K& key, const value_type& value, UpdateFlag flag = UpdateFlag::Any) {
    std::vector<std::byte> wire(value_wire_size());
    if (auto encoded = encode(value, wire.data(), "update"); !encoded) return encoded;
    return update_bytes(map_, &key, wire.data(), flag);
  }

  // Per-CPU maps: the same value on every CPU (e.g. to reset a counter).
  [[nodiscard]] Result<void> update_all_cpus(const K& key, const V& value, UpdateFlag flag = UpdateFlag::Any)
    requires Kind::per_cpu
  {
    return update(key, value_type(cpu_count_, value), flag);
  }

  // false when the key was absent; an error on array maps.
  [[nodiscard]] Result<bool> erase(const K& key) { return erase_bytes(map_, &key, Kind::deletable); }

  // visit(key) once per key present; visit may erase keys (see walk_keys).
  template <class Visit>
  [[nodiscard]] Result<std::size_t> for_each_key(Visit&& visit) const {
    return walk_keys(map_, [&](const std::byte* bytes) { visit(from_bytes<K>(bytes)); });
  }
  // A snapshot of the keys: later changes to the map do not affect it.
  [[nodiscard]] Result<std::vector<K>> keys() const {
    std::vector<K> collected;
    auto walked = for_each_key([&](const K& key) { collected.push_back(key); });
    if (!walked) return walked.error();
    return collected;
  }
  // visit(key, value) for every element; keys deleted between walk and lookup are skipped.
  template <class Visit>
  [[nodiscard]] Result<std::size_t> for_each(Visit&& visit) const {
    std::size_t visited = 0;
    Result<void> failure;
    auto walked = for_each_key([&](const K& key) {
      if (!failure) return;
      auto value = lookup(key);
      if (!value) {
        failure = value.error();
      } else if (*value) {
        visit(key, **value);
        ++visited;
      }
    });
    if (!walked) return walked.error();
    if (!failure) return failure.error();
    return visited;
  }
  [[nodiscard]] Result<std::vector<std::pair<K, value_type>>> entries() const {
    std::vector<std::pair<K, value_type>> collected;
    auto walked = for_each([&](const K& key, const value_type& value) { collected.emplace_back(key, value); });
    if (!walked) return walked.error();
    return collected;
  }

  // The whole map with BPF_MAP_LOOKUP_BATCH (element-wise where unsupported, e.g. LPM trie).
  [[nodiscard]] Result<std::vector<std::pair<K, value_type>>> lookup_batch() const {
    std::vector<std::byte> key_bytes, value_bytes;
    if (auto dumped = lookup_all_bytes(map_, value_wire_size(), key_bytes, value_bytes); !dumped)
      return dumped.error();
    const std::size_t count = key_bytes.size() / sizeof(K);
    std::vector<std::pair<K, value_type>> collected;
    collected.reserve(count);
    for (std::size_t i = 0; i < count; ++i)
      collected.emplace_back(from_bytes<K>(key_bytes.data() + i * sizeof(K)),
                             decode(value_bytes.data() + i * value_wire_size()));
    return collected;
  }
  // Returns the number written; on failure Error::done says how many were.
  [[nodiscard]] Result<std::size_t> update_batch(std::span<const K> keys, std::span<const value_type> values,
                                   UpdateFlag flag = UpdateFlag::Any) {
    if (keys.size() != values.size())
      return make_error_because("update_batch", map_.name(),
                                std::to_string(keys.size()) + " keys but " + std::to_string(values.size()) + " values",
                                EINVAL);
    std::vector<std::byte> wire(values.size() * value_wire_size());
    for (std::size_t i = 0; i < values.size(); ++i)
      if (auto encoded = encode(values[i], wire.data() + i * value_wire_size(), "update_batch"); !encoded)
        return encoded.error();
    return update_batch_bytes(map_, reinterpret_cast<const std::byte*>(keys.data()), wire.data(), keys.size(),
                              value_wire_size(), flag);
  }
  // Returns the number deleted; an absent key stops the batch with ENOENT (kernel semantics).
  [[nodiscard]] Result<std::size_t> erase_batch(std::span<const K> keys) {
    return erase_batch_bytes(map_, reinterpret_cast<const std::byte*>(keys.data()), keys.size(), Kind::deletable);
  }

  const MapFd& map() const noexcept { return map_; }
  const std::string& name() const noexcept { return map_.name(); }
  // Values per element: libbpf_num_possible_cpus() for per-CPU maps, else 1.
  std::size_t cpu_count() const noexcept { return cpu_count_; }

 private:
  KeyValueMap(MapFd map, std::size_t cpus) : map_(std::move(map)), cpu_count_(cpus) {}

  template <class T>
  static T from_bytes(const std::byte* bytes) {
    T object;
    std::memcpy(&object, bytes, sizeof(T));
    return object;
  }

  // Bytes of one element's value as the syscall sees it.
  std::size_t value_wire_size() const {
    if constexpr (Kind::per_cpu) return per_cpu_stride(sizeof(V)) * cpu_count_;
    return sizeof(V);
  }

  [[nodiscard]] Result<void> encode(const value_type& value, std::byte* wire, const char* operation) const {
    if constexpr (Kind::per_cpu) {
      if (value.size() != cpu_count_)
        return make_error_because(operation, map_.name(),
                                  std::to_string(value.size()) + " per-CPU values given, " +
                                      std::to_string(cpu_count_) + " possible CPUs",
                                  EINVAL);
      for (std::size_t cpu = 0; cpu < cpu_count_; ++cpu)
        std::memcpy(wire + cpu * per_cpu_stride(sizeof(V)), &value[cpu], sizeof(V));
    } else {
      std::memcpy(wire, &value, sizeof(V));
    }
    return {};
  }

  value_type decode(const std::byte* wire) const {
    if constexpr (Kind::per_cpu) {
      value_type values(cpu_count_);
      for (std::size_t cpu = 0; cpu < cpu_count_; ++cpu)
        values[cpu] = from_bytes<V>(wire + cpu * per_cpu_stride(sizeof(V)));
      return values;
    } else {
      return from_bytes<V>(wire);
    }
  }

  MapFd map_;
  std::size_t cpu_count_ = 1;
};

}  // namespace detail

template <class K, class V>
using HashMap = detail::KeyValueMap<K, V, detail::HashKind>;
template <class V>
using ArrayMap = detail::KeyValueMap<std::uint32_t, V, detail::ArrayKind>;
template <class K, class V>
using PerCpuHashMap = detail::KeyValueMap<K, V, detail::PerCpuHashKind>;
template <class V>
using PerCpuArrayMap = detail::KeyValueMap<std::uint32_t, V, detail::PerCpuArrayKind>;
// K is an LPM key: u32 prefixlen then the address bytes (sluice_lpm_v4_key, sluice_lpm_v6_key).
template <class K, class V>
using LpmTrie = detail::KeyValueMap<K, V, detail::LpmTrieKind>;

// Sum of a per-CPU value: add(total, one_cpu_value) folds each CPU in.
template <class V, class Add>
V sum(const std::vector<V>& per_cpu, Add add) {
  V total{};
  for (const V& value : per_cpu) add(total, value);
  return total;
}
template <class V>
  requires requires(V& total, const V& value) { total += value; }
V sum(const std::vector<V>& per_cpu) {
  return sum(per_cpu, [](V& total, const V& value) { total += value; });
}

}  // namespace sluice::maps
