#include "doctor_command.hpp"

#include <CLI/CLI.hpp>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <memory>

#include "doctor.hpp"
#include "status_document.hpp"

namespace sluice::cli {
namespace {

namespace json = boost::json;

constexpr long bpffs_magic = 0xcafe4a11;  // BPF_FS_MAGIC (linux/magic.h)
constexpr const char* bpffs_root = "/sys/fs/bpf";

struct DaemonLost {
  std::string message;
};

// An interface name from the daemon, before it goes into a /proc path or an
// ioctl: what the kernel allows in a name, nothing that walks a directory.
bool plain_interface_name(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ || name == "." || name == "..") return false;
  for (char c : name)
    if (c == '/' || static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f) return false;
  return true;
}

std::optional<int> read_sysctl_int(const std::string& path) {
  std::ifstream in(path);
  int value = 0;
  if (in >> value) return value;
  return std::nullopt;
}

std::optional<unsigned> interface_mtu(const std::string& name) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  ifreq request{};
  std::memcpy(request.ifr_name, name.c_str(), name.size());
  const int got = ::ioctl(fd, SIOCGIFMTU, &request);
  ::close(fd);
  if (got != 0 || request.ifr_mtu <= 0) return std::nullopt;
  return static_cast<unsigned>(request.ifr_mtu);
}

DoctorFacts gather(TopContext& ctx) {
  const protocol::StatusCall call = [&ctx](std::string_view op, const json::object& args)
      -> std::variant<json::value, std::string> {
    auto result = ctx.call(op, args);
    if (result) return std::move(*result);
    if (result.error().transport) throw DaemonLost{result.error().transport->message};
    return result.error().daemon->message;
  };
  DoctorFacts facts;
  facts.document = protocol::compose_status(call);
  if (auto lb = ctx.call("lb.show", {}); lb && lb->is_object()) facts.lb = lb->get_object();
  if (auto status = ctx.call("status", {}); status && status->is_object())
    if (const json::value* dir = status->get_object().if_contains("pin_dir"); dir && dir->is_string())
      facts.pin_dir = std::string(dir->get_string());

  struct statfs fs {};
  facts.bpffs_mounted = ::statfs(bpffs_root, &fs) == 0 && static_cast<long>(fs.f_type) == bpffs_magic;
  if (facts.bpffs_mounted && !facts.pin_dir.empty()) {
    struct stat info {};
    facts.pin_dir_present = ::stat(facts.pin_dir.c_str(), &info) == 0;
  }
  facts.rp_filter_all = read_sysctl_int("/proc/sys/net/ipv4/conf/all/rp_filter");
  if (const json::value* interfaces = facts.document.if_contains("interfaces"); interfaces && interfaces->is_array())
    for (const auto& value : interfaces->get_array()) {
      const json::value* name = value.is_object() ? value.get_object().if_contains("name") : nullptr;
      if (!name || !name->is_string()) continue;
      const std::string ifname(name->get_string());
      if (!plain_interface_name(ifname)) continue;
      facts.interfaces[ifname] = {interface_mtu(ifname),
                                  read_sysctl_int("/proc/sys/net/ipv4/conf/" + ifname + "/rp_filter")};
    }
  return facts;
}

int run_doctor(TopContext& ctx, bool as_json) {
  DoctorFacts facts;
  try {
    facts = gather(ctx);
  } catch (const DaemonLost& lost) {
    ctx.env.err << "sluicectl: doctor: " << lost.message << '\n';
    return kExitUnavailable;
  }
  const std::vector<Finding> findings = diagnose(facts);
  const auto checks = doctor_checks();
  if (as_json) {
    json::array problems, checked;
    for (const auto& f : findings)
      problems.push_back({{"check", f.check}, {"severity", to_string(f.severity)}, {"subject", f.subject},
                          {"problem", f.problem}, {"meaning", f.meaning}, {"fix", f.fix}});
    for (const auto& check : checks) checked.push_back(json::string(check));
    ctx.env.out << json::serialize(json::object{{"problems", std::move(problems)}, {"checked", std::move(checked)}})
                << '\n';
  } else if (findings.empty()) {
    ctx.env.out << "sluicectl doctor: no problem found (" << checks.size() << " checks)\n";
  } else {
    std::size_t errors = 0;
    for (const auto& f : findings) errors += f.severity == Severity::error;
    ctx.env.out << "sluicectl doctor: " << findings.size() << " problem" << (findings.size() == 1 ? "" : "s") << " ("
                << errors << " error" << (errors == 1 ? "" : "s") << ", " << findings.size() - errors << " warning"
                << (findings.size() - errors == 1 ? "" : "s") << ")\n";
    for (const auto& f : findings) {
      ctx.env.out << "\n" << (f.severity == Severity::error ? "ERROR   " : "WARNING ") << f.problem << "  [" << f.check
                  << "]\n"
                  << "        means: " << f.meaning << "\n"
                  << "        fix:   " << f.fix << "\n";
    }
  }
  return findings.empty() ? kExitOk : kExitFailed;
}

}  // namespace

void add_doctor_command(CLI::App& app, const std::function<void(DoctorAction)>& set_action) {
  auto* cmd = app.add_subcommand(
      "doctor", "Check the set-up for what silently stops traffic; print each problem, its meaning and its fix");
  auto as_json = std::make_shared<bool>(false);
  cmd->add_flag("--json", *as_json, "The findings as JSON (also with the global --json)");
  cmd->callback([=] {
    set_action([as_json](TopContext& ctx) { return run_doctor(ctx, *as_json || ctx.json); });
  });
}

}  // namespace sluice::cli
