#include "map_fd.hpp"

#include <bpf/btf.h>
#include <fcntl.h>
#include <gtest/gtest.h>

#include <array>
#include <filesystem>
#include <optional>

#include "kv_map.hpp"
#include "map_test_support.hpp"
#include "maps_reuse_probe.skel.h"
#include "privileges.hpp"

namespace sluice::maps {
namespace {

using test::PinDir;

constexpr std::uint32_t kSmallEntries = 16;

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

TEST(MapFd, CreateReportsWhatTheKernelMade) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto map = MapFd::create(BPF_MAP_TYPE_HASH, "fd_info", 4, 8, kSmallEntries, BPF_F_NO_PREALLOC);
  ASSERT_TRUE(map) << map.error().message;
  EXPECT_EQ(map->name(), "fd_info");
  EXPECT_EQ(map->type(), BPF_MAP_TYPE_HASH);
  EXPECT_EQ(map->key_size(), 4u);
  EXPECT_EQ(map->value_size(), 8u);
  EXPECT_EQ(map->max_entries(), kSmallEntries);
  EXPECT_EQ(map->map_flags(), std::uint32_t{BPF_F_NO_PREALLOC});
  EXPECT_NE(map->info().id, 0u);
}

TEST(MapFd, CreateErrorNamesTheMap) {
  SLUICE_REQUIRE_PRIVILEGES();
  auto map = MapFd::create(BPF_MAP_TYPE_HASH, "zero_key", 0, 8, kSmallEntries);
  ASSERT_FALSE(map);
  EXPECT_EQ(map.error().errnum, EINVAL);
  EXPECT_NE(map.error().message.find("zero_key"), std::string::npos) << map.error().message;
  EXPECT_NE(map.error().message.find("EINVAL"), std::string::npos) << map.error().message;
}

TEST(MapFd, MoveTransfersOwnershipAndDestructionCloses) {
  SLUICE_REQUIRE_PRIVILEGES();
  int raw_fd = -1;
  {
    auto created = MapFd::create(BPF_MAP_TYPE_ARRAY, "fd_move", 4, 4, 1);
    ASSERT_TRUE(created) << created.error().message;
    MapFd first = std::move(*created);
    raw_fd = first.fd();
    MapFd second = std::move(first);
    EXPECT_EQ(first.fd(), -1);  // NOLINT(bugprone-use-after-move): moved-from state is the point
    EXPECT_EQ(second.fd(), raw_fd);
    EXPECT_EQ(second.name(), "fd_move");
    EXPECT_TRUE(fd_is_open(raw_fd));
  }
  EXPECT_FALSE(fd_is_open(raw_fd));
  static_assert(!std::is_copy_constructible_v<MapFd> && !std::is_copy_assignable_v<MapFd>);
}

TEST(MapFd, OpenMissingPinNamesThePath) {
  SLUICE_REQUIRE_BPFFS();
  PinDir pins;
  const std::string path = pins / "missing";
  auto map = MapFd::open_pinned(path);
  ASSERT_FALSE(map);
  EXPECT_EQ(map.error().errnum, ENOENT);
  EXPECT_EQ(map.error().message, "open pinned " + path + ": no such file (ENOENT)");
}

TEST(MapFd, OpenPinnedProgramIsNotAMap) {
  SLUICE_REQUIRE_BPFFS();
  PinDir pins;
  test::TrivialXdpProgram program;
  ASSERT_GE(program.fd(), 0);
  const std::string path = pins / "a_prog";
  ASSERT_EQ(bpf_obj_pin(program.fd(), path.c_str()), 0);
  auto map = MapFd::open_pinned(path);
  ASSERT_FALSE(map);
  EXPECT_NE(map.error().message.find("not a map"), std::string::npos) << map.error().message;
}

TEST(MapFd, PinOpenPinnedSeesTheSameMapAndUnpinRemovesThePin) {
  SLUICE_REQUIRE_BPFFS();
  PinDir pins;
  const std::string path = pins / "pinned_hash";
  auto created = MapFd::create(BPF_MAP_TYPE_HASH, "pinned_hash", 4, 8, kSmallEntries);
  ASSERT_TRUE(created) << created.error().message;
  auto writer = HashMap<std::uint32_t, std::uint64_t>::from(std::move(*created));
  ASSERT_TRUE(writer) << writer.error().message;
  ASSERT_TRUE(writer->update(7, 700));
  ASSERT_TRUE(writer->map().pin(path));

  auto twice = writer->map().pin(path);
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().errnum, EEXIST);

  auto reader = HashMap<std::uint32_t, std::uint64_t>::open_pinned(path);
  ASSERT_TRUE(reader) << reader.error().message;
  EXPECT_EQ(reader->map().info().id, writer->map().info().id);
  auto value = reader->lookup(7);
  ASSERT_TRUE(value) << value.error().message;
  ASSERT_TRUE(value->has_value());
  EXPECT_EQ(**value, 700u);
  ASSERT_TRUE(reader->update(8, 800));
  EXPECT_EQ(writer->lookup(8).value(), std::optional<std::uint64_t>{800});

  ASSERT_TRUE(writer->map().unpin(path));
  EXPECT_FALSE(std::filesystem::exists(path));
  EXPECT_EQ(writer->lookup(7).value(), std::optional<std::uint64_t>{700});  // the map outlives its pin
  auto again = writer->map().unpin(path);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().errnum, ENOENT);
}

struct ProbeSkeleton {
  maps_reuse_probe_bpf* skeleton = maps_reuse_probe_bpf__open();
  ~ProbeSkeleton() { maps_reuse_probe_bpf__destroy(skeleton); }
};

TEST(ReusePinned, FalseWithoutPinTrueWithCompatiblePin) {
  SLUICE_REQUIRE_BPFFS();
  PinDir pins;
  const std::string path = pins / "probe_table";
  {
    ProbeSkeleton fresh;
    ASSERT_NE(fresh.skeleton, nullptr);
    auto reused = reuse_pinned(fresh.skeleton->obj, fresh.skeleton->maps.probe_table, path);
    ASSERT_TRUE(reused) << reused.error().message;
    EXPECT_FALSE(*reused);
  }
  // The pin an earlier load of the same object left (with its BTF).
  std::optional<HashMap<std::uint32_t, std::uint64_t>> pinned;
  {
    ProbeSkeleton first;
    ASSERT_NE(first.skeleton, nullptr);
    ASSERT_EQ(maps_reuse_probe_bpf__load(first.skeleton), 0);
    auto created = MapFd::from_skeleton(first.skeleton->maps.probe_table);
    ASSERT_TRUE(created) << created.error().message;
    auto table = HashMap<std::uint32_t, std::uint64_t>::from(std::move(*created));
    ASSERT_TRUE(table);
    pinned.emplace(std::move(*table));
  }
  ASSERT_TRUE(pinned->update(0, 42));
  ASSERT_TRUE(pinned->map().pin(path));

  ProbeSkeleton restart;
  ASSERT_NE(restart.skeleton, nullptr);
  auto reused = reuse_pinned(restart.skeleton->obj, restart.skeleton->maps.probe_table, path);
  ASSERT_TRUE(reused) << reused.error().message;
  EXPECT_TRUE(*reused);
  ASSERT_EQ(maps_reuse_probe_bpf__load(restart.skeleton), 0);

  auto from_skeleton = MapFd::from_skeleton(restart.skeleton->maps.probe_table);
  ASSERT_TRUE(from_skeleton) << from_skeleton.error().message;
  EXPECT_EQ(from_skeleton->info().id, pinned->map().info().id);
  auto loaded_view = HashMap<std::uint32_t, std::uint64_t>::from(std::move(*from_skeleton));
  ASSERT_TRUE(loaded_view);
  EXPECT_EQ(loaded_view->lookup(0).value(), std::optional<std::uint64_t>{42});
}

TEST(ReusePinned, IncompatiblePinIsAnError) {
  SLUICE_REQUIRE_BPFFS();
  PinDir pins;
  const std::string path = pins / "probe_table";
  auto wrong_key = MapFd::create(BPF_MAP_TYPE_HASH, "probe_table", 8, 8, 64);
  ASSERT_TRUE(wrong_key);
  ASSERT_TRUE(wrong_key->pin(path));
  ProbeSkeleton skeleton;
  ASSERT_NE(skeleton.skeleton, nullptr);
  auto reused = reuse_pinned(skeleton.skeleton->obj, skeleton.skeleton->maps.probe_table, path);
  ASSERT_FALSE(reused);
  EXPECT_EQ(reused.error().errnum, EINVAL);
  EXPECT_NE(reused.error().message.find("key_size 8 pinned, 4 expected"), std::string::npos)
      << reused.error().message;
  ASSERT_TRUE(wrong_key->unpin(path));

  auto wrong_type = MapFd::create(BPF_MAP_TYPE_ARRAY, "probe_table", 4, 8, 64);
  ASSERT_TRUE(wrong_type);
  ASSERT_TRUE(wrong_type->pin(path));
  reused = reuse_pinned(skeleton.skeleton->obj, skeleton.skeleton->maps.probe_table, path);
  ASSERT_FALSE(reused);
  EXPECT_NE(reused.error().message.find("type array pinned, hash expected"), std::string::npos)
      << reused.error().message;
  ASSERT_TRUE(wrong_type->unpin(path));

  auto wrong_size = MapFd::create(BPF_MAP_TYPE_HASH, "probe_table", 4, 8, 128);
  ASSERT_TRUE(wrong_size);
  ASSERT_TRUE(wrong_size->pin(path));
  reused = reuse_pinned(skeleton.skeleton->obj, skeleton.skeleton->maps.probe_table, path);
  ASSERT_FALSE(reused);
  EXPECT_NE(reused.error().message.find("max_entries 128 pinned, 64 expected"), std::string::npos)
      << reused.error().message;
}

// BTF written by hand: `__u32` (typedef of unsigned int) as the key and a
// struct probe_pair of two __u32 members whose names and bit offsets the
// test chooses, loaded into the kernel for a map created by hand.
struct PairMember {
  const char* name;
  std::uint32_t bit_offset;
};
class HandMadeBtf {
 public:
  explicit HandMadeBtf(const std::array<PairMember, 2>& members) : types_(btf__new_empty()) {
    if (!types_) return;
    const int uint = btf__add_int(types_, "unsigned int", 4, 0);
    key_id_ = btf__add_typedef(types_, "__u32", uint);
    value_id_ = btf__add_struct(types_, "probe_pair", 8);
    for (const auto& member : members) btf__add_field(types_, member.name, key_id_, member.bit_offset, 0);
    loaded_ = btf__load_into_kernel(types_) == 0;
  }
  ~HandMadeBtf() { btf__free(types_); }
  HandMadeBtf(const HandMadeBtf&) = delete;
  HandMadeBtf& operator=(const HandMadeBtf&) = delete;

  // A hash map like probe_pairs described by this BTF, pinned at path.
  Result<MapFd> pin_pairs_map(const std::string& path, std::uint32_t flags = 0) const {
    if (!loaded_) return make_error("load", "hand-made BTF", EINVAL);
    LIBBPF_OPTS(bpf_map_create_opts, options, .btf_fd = static_cast<__u32>(btf__fd(types_)),
                .btf_key_type_id = static_cast<__u32>(key_id_), .btf_value_type_id = static_cast<__u32>(value_id_),
                .map_flags = flags);
    const int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "probe_pairs", 4, 8, 64, &options);
    if (fd < 0) return make_error("create", "probe_pairs", -fd);
    auto map = MapFd::adopt(fd, "probe_pairs");
    if (!map) return map.error();
    if (auto pinned = map->pin(path); !pinned) return pinned.error();
    return map;
  }

 private:
  btf* types_ = nullptr;
  int key_id_ = -1;
  int value_id_ = -1;
  bool loaded_ = false;
};

TEST(ReusePinned, SameBtfLayoutIsReusedAndTheObjectLoads) {
  SLUICE_REQUIRE_BPFFS();
  PinDir pins;
  const std::string path = pins / "probe_pairs";
  HandMadeBtf same({{{"packets", 0}, {"bytes", 32}}});
  auto map = same.pin_pairs_map(path);
  ASSERT_TRUE(map) << map.error().message;
  ProbeSkeleton skeleton;
  ASSERT_NE(skeleton.skeleton, nullptr);
  auto reused = reuse_pinned(skeleton.skeleton->obj, skeleton.skeleton->maps.probe_pairs, path);
  ASSERT_TRUE(reused) << reused.error().message;
  EXPECT_TRUE(*reused);
  ASSERT_EQ(maps_reuse_probe_bpf__load(skeleton.skeleton), 0);
}

TEST(ReusePinned, SameSizeValueOfAnotherLayoutIsRefusedNamingMapAndMember) {
  SLUICE_REQUIRE_BPFFS();
  PinDir pins;
  const std::string path = pins / "probe_pairs";
  ProbeSkeleton skeleton;
  ASSERT_NE(skeleton.skeleton, nullptr);
  {
    // Same size, same member types: the two counters swapped places.
    HandMadeBtf swapped({{{"bytes", 0}, {"packets", 32}}});
    auto map = swapped.pin_pairs_map(path);
    ASSERT_TRUE(map) << map.error().message;
    auto reused = reuse_pinned(skeleton.skeleton->obj, skeleton.skeleton->maps.probe_pairs, path);
    ASSERT_FALSE(reused) << "a value layout change of the same size was accepted";
    EXPECT_EQ(reused.error().errnum, EINVAL);
    const std::string& message = reused.error().message;
    EXPECT_NE(message.find("probe_pairs"), std::string::npos) << message;
    EXPECT_NE(message.find("value type: struct probe_pair member 0 (packets): name 'bytes' pinned, 'packets' expected"),
              std::string::npos)
        << message;
    ASSERT_TRUE(map->unpin(path));
  }
  {
    // Same names, same size, bytes moved to overlap the upper half of packets.
    HandMadeBtf moved({{{"packets", 0}, {"bytes", 16}}});
    auto map = moved.pin_pairs_map(path);
    ASSERT_TRUE(map) << map.error().message;
    auto reused = reuse_pinned(skeleton.skeleton->obj, skeleton.skeleton->maps.probe_pairs, path);
    ASSERT_FALSE(reused);
    EXPECT_NE(reused.error().message.find("member 1 (bytes): bit offset 16 pinned, 32 expected"), std::string::npos)
        << reused.error().message;
    ASSERT_TRUE(map->unpin(path));
  }
  // No BTF at all: the layout cannot be proven, so it is not reused.
  auto bare = MapFd::create(BPF_MAP_TYPE_HASH, "probe_pairs", 4, 8, 64);
  ASSERT_TRUE(bare) << bare.error().message;
  ASSERT_TRUE(bare->pin(path));
  auto reused = reuse_pinned(skeleton.skeleton->obj, skeleton.skeleton->maps.probe_pairs, path);
  ASSERT_FALSE(reused);
  EXPECT_NE(reused.error().message.find("the pinned map carries no BTF"), std::string::npos) << reused.error().message;
}

TEST(ReusePinned, MapFlagsMismatchIsRefused) {
  SLUICE_REQUIRE_BPFFS();
  PinDir pins;
  const std::string path = pins / "probe_pairs";
  HandMadeBtf same({{{"packets", 0}, {"bytes", 32}}});
  auto map = same.pin_pairs_map(path, BPF_F_NO_PREALLOC);
  ASSERT_TRUE(map) << map.error().message;
  ProbeSkeleton skeleton;
  ASSERT_NE(skeleton.skeleton, nullptr);
  auto reused = reuse_pinned(skeleton.skeleton->obj, skeleton.skeleton->maps.probe_pairs, path);
  ASSERT_FALSE(reused);
  EXPECT_EQ(reused.error().errnum, EINVAL);
  EXPECT_NE(reused.error().message.find("probe_pairs"), std::string::npos) << reused.error().message;
  EXPECT_NE(reused.error().message.find("map_flags 0x1 pinned, 0x0 expected"), std::string::npos)
      << reused.error().message;
}

TEST(MapFd, FromSkeletonOutlivesTheSkeleton) {
  SLUICE_REQUIRE_PRIVILEGES();
  std::optional<MapFd> kept;
  {
    ProbeSkeleton skeleton;
    ASSERT_NE(skeleton.skeleton, nullptr);
    auto before_load = MapFd::from_skeleton(skeleton.skeleton->maps.probe_table);
    ASSERT_FALSE(before_load);
    EXPECT_NE(before_load.error().message.find("probe_table"), std::string::npos);
    ASSERT_EQ(maps_reuse_probe_bpf__load(skeleton.skeleton), 0);
    auto map = MapFd::from_skeleton(skeleton.skeleton->maps.probe_table);
    ASSERT_TRUE(map) << map.error().message;
    kept.emplace(std::move(*map));
  }
  auto table = HashMap<std::uint32_t, std::uint64_t>::from(std::move(*kept));
  ASSERT_TRUE(table) << table.error().message;
  ASSERT_TRUE(table->update(1, 2));
  EXPECT_EQ(table->lookup(1).value(), std::optional<std::uint64_t>{2});
}

TEST(Error, ValueThrowsTheMessage) {
  Result<int> failed = make_error("update", "conn_table", EEXIST, ErrnoSubject::Element);
  EXPECT_EQ(failed.error().message, "update conn_table: key exists (EEXIST)");
  try {
    (void)failed.value();
    FAIL() << "value() of an error did not throw";
  } catch (const MapError& thrown) {
    EXPECT_STREQ(thrown.what(), "update conn_table: key exists (EEXIST)");
    EXPECT_EQ(thrown.code().value(), EEXIST);
  }
}

}  // namespace
}  // namespace sluice::maps
