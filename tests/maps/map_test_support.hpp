#pragma once
// Helpers shared by the map handle tests: a private bpffs directory and a
// trivial XDP program to put into program-valued maps.
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <string>

namespace sluice::maps::test {

// /sys/fs/bpf/sluice-test-<pid>/, removed with every pin in it.
class PinDir {
 public:
  PinDir() : path_("/sys/fs/bpf/sluice-test-" + std::to_string(::getpid())) {
    std::filesystem::create_directories(path_);
  }
  ~PinDir() {
    std::error_code ignored;  // best effort: a failed test must not leak pins, nor throw here
    std::filesystem::remove_all(path_, ignored);
  }
  PinDir(const PinDir&) = delete;
  PinDir& operator=(const PinDir&) = delete;
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// An owned fd of a program that returns XDP_PASS.
class TrivialXdpProgram {
 public:
  explicit TrivialXdpProgram(bpf_attach_type expected_attach_type = BPF_XDP) {
    const std::array<bpf_insn, 2> program{{
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .src_reg = 0, .off = 0, .imm = XDP_PASS},
        {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
    }};
    LIBBPF_OPTS(bpf_prog_load_opts, options, .expected_attach_type = expected_attach_type);
    fd_ = bpf_prog_load(BPF_PROG_TYPE_XDP, "sluice_pass", "GPL", program.data(), program.size(), &options);
  }
  ~TrivialXdpProgram() {
    if (fd_ >= 0) ::close(fd_);
  }
  TrivialXdpProgram(const TrivialXdpProgram&) = delete;
  TrivialXdpProgram& operator=(const TrivialXdpProgram&) = delete;

  int fd() const { return fd_; }
  std::uint32_t id() const {
    bpf_prog_info info{};
    __u32 length = sizeof(info);
    return bpf_obj_get_info_by_fd(fd_, &info, &length) == 0 ? info.id : 0;
  }

 private:
  int fd_ = -1;
};

}  // namespace sluice::maps::test
