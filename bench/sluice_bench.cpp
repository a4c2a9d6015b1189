// sluice-bench: every section of the suite in one run, on one pinned CPU,
// as one table, one JSON file and one plot per scaling curve. Each section
// is its own program (bench/*_bench, the contract of figure.hpp), run as a
// child with --json; a section that fails or hangs is reported and the
// others still run, and the exit status says whether all of them ran.
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <ctime>
#include <iomanip>
#include <optional>
#include <sstream>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>

#include "bench_plots.hpp"
#include "bench_support.hpp"
#include "child_process.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace sluice::bench;

// The sections in the order they run and print: the floor first, then each
// stage alone, then the stages composed.
struct Section {
  const char* name;
  const char* program;
};
constexpr Section all_sections[] = {{"pipeline", "pipeline_bench"}, {"dir24_8", "dir24_8_bench"},
                                    {"filter", "filter_bench"},     {"lb", "lb_bench"},
                                    {"forward", "forward_bench"},   {"pps", "pps_bench"},
                                    {"control", "control_bench"}};

// Bounds on one section: the full run's slowest (filter at 1,000,000 prefixes) takes minutes.
constexpr auto section_deadline = std::chrono::minutes(20);
constexpr auto quick_section_deadline = std::chrono::minutes(3);

struct Failure {
  std::string section;
  std::string reason;
};

// Where the section programs are: beside sluice-bench (the build tree),
// else in ../lib/sluice/bench (the installed package).
fs::path default_section_dir() {
  std::error_code error;
  const fs::path self = fs::read_symlink("/proc/self/exe", error);
  if (error) return ".";
  const fs::path beside = self.parent_path();
  if (fs::exists(beside / all_sections[0].program)) return beside;
  return beside.parent_path() / "lib" / "sluice" / "bench";
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm parts{};
  gmtime_r(&now, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &parts);
  return text;
}

// Written whole or not at all: a reader never sees half a report.
void write_atomically(const fs::path& path, const std::string& text) {
  const fs::path temporary = path.string() + ".tmp";
  {
    std::ofstream out(temporary, std::ios::trunc);
    out << text;
    if (!out.flush()) throw std::runtime_error("--json " + path.string() + ": cannot write");
  }
  fs::rename(temporary, path);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sluice-bench: every path of sluice measured against this machine's floor and its peers, in one run"};
  bool quick = false;
  std::string json_file, plots_dir, only, sections_text;
  int cpu = -1, rounds = 0;
  fs::path section_dir = default_section_dir();
  app.add_flag("--quick", quick, "small scales and few rounds: a check that every section works (minutes)");
  app.add_option("--json", json_file, "write every figure, its spread and the machine to FILE")->type_name("FILE");
  app.add_option("--plots", plots_dir, "draw one PNG per scaling curve into DIR (gnuplot)")->type_name("DIR");
  app.add_option("--only", only, "keep the figures whose section/group/name matches this regular expression")
      ->type_name("REGEX");
  app.add_option("--sections", sections_text, "run only these sections, comma-separated (pipeline,dir24_8,filter,lb,forward,pps,control)")
      ->type_name("LIST");
  app.add_option("--cpu", cpu, "pin every section to this CPU (default: the last one this process may use)")
      ->check(CLI::Range(0, 4095));
  app.add_option("--rounds", rounds, "paired rounds per figure (default: each section's own)")->check(CLI::Range(1, 100));
  app.add_option("--section-dir", section_dir, "where the section programs are")->check(CLI::ExistingDirectory);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;  // --help is 0; every usage error is 2, as the man page says
  }

  std::optional<std::regex> keep;
  try {
    if (!only.empty()) keep.emplace(only, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    std::cerr << "sluice-bench: --only '" << only << "': not a regular expression: " << e.what() << "\n";
    return 2;
  }
  std::vector<Section> chosen;
  if (sections_text.empty()) {
    chosen.assign(std::begin(all_sections), std::end(all_sections));
  } else {
    std::stringstream list(sections_text);
    for (std::string name; std::getline(list, name, ',');) {
      auto found = std::find_if(std::begin(all_sections), std::end(all_sections),
                                [&](const Section& s) { return name == s.name; });
      if (found == std::end(all_sections)) {
        std::cerr << "sluice-bench: --sections: unknown section '" << name << "' (pipeline, dir24_8, filter, lb, forward, pps, control)\n";
        return 2;
      }
      if (std::find_if(chosen.begin(), chosen.end(), [&](const Section& s) { return name == s.name; }) == chosen.end())
        chosen.push_back(*found);
    }
  }
  if (cpu < 0) cpu = default_bench_cpu();

  const bool terminal = ::isatty(STDERR_FILENO) == 1;
  const auto deadline = std::chrono::duration_cast<std::chrono::seconds>(quick ? quick_section_deadline : section_deadline);
  const fs::path logs = fs::temp_directory_path() / ("sluice-bench." + std::to_string(::getpid()));
  fs::create_directories(logs);
  std::vector<SectionReport> reports;
  std::vector<Failure> failures;
  std::vector<Figure> figures;
  const auto started = std::chrono::steady_clock::now();
  const std::string started_utc = utc_now();
  for (std::size_t i = 0; i < chosen.size(); ++i) {
    const Section& section = chosen[i];
    std::cerr << "sluice-bench [" << i + 1 << "/" << chosen.size() << "] " << section.name << " ..."
              << (terminal ? "" : "\n") << std::flush;
    std::vector<std::string> args{(section_dir / section.program).string(), "--json", "--cpu", std::to_string(cpu)};
    if (quick) args.push_back("--quick");
    if (rounds) args.insert(args.end(), {"--rounds", std::to_string(rounds)});
    const fs::path errors = logs / (std::string(section.name) + ".stderr");
    const auto section_started = std::chrono::steady_clock::now();
    std::string reason;
    try {
      const ChildResult result = run_child(args, errors, deadline);
      if (result.exit_code != 0) {
        std::ifstream log(errors);
        std::stringstream text;
        text << log.rdbuf();
        std::string tail = text.str();
        constexpr std::size_t tail_bytes = 2000;
        if (tail.size() > tail_bytes) tail = "..." + tail.substr(tail.size() - tail_bytes);
        reason = describe(result, deadline) + (tail.empty() ? "" : ": " + tail);
      } else {
        SectionReport report = check_section_output(result.out, section.name);
        std::erase_if(report.figures, [&](const Figure& f) {
          return keep && !std::regex_search(f.section + "/" + f.group + "/" + f.name, *keep);
        });
        figures.insert(figures.end(), report.figures.begin(), report.figures.end());
        reports.push_back(std::move(report));
      }
    } catch (const std::exception& e) {
      reason = std::string("its report is not a section report: ") + e.what();
    }
    const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - section_started).count();
    if (!reason.empty()) failures.push_back({section.name, reason});
    std::cerr << (terminal ? "\r" : "") << "sluice-bench [" << i + 1 << "/" << chosen.size() << "] " << section.name
              << (reason.empty() ? " done" : " FAILED") << " in " << std::fixed << std::setprecision(0) << seconds
              << " s\n";
  }

  const Machine machine = read_machine(cpu);
  std::cout << "sluice-bench " << (quick ? "--quick " : "") << started_utc << " on " << machine.cpu_model << ", CPU "
            << cpu << ", kernel " << machine.kernel << ", " << machine.clang << ", bpf_jit_enable "
            << machine.bpf_jit_enable << ", bpf_jit_harden " << machine.bpf_jit_harden << "\n";
  print_figure_table(std::cout, figures);
  for (const SectionReport& report : reports)
    for (const std::string& note : report.notes) std::cout << "  " << report.section << ": " << note << "\n";
  for (const Failure& failure : failures) std::cout << "FAILED " << failure.section << ": " << failure.reason << "\n";

  int status = failures.empty() ? 0 : 1;
  if (!plots_dir.empty()) {
    try {
      for (const fs::path& png : write_plots(figures, plots_dir)) std::cerr << "sluice-bench: plot " << png.string() << "\n";
    } catch (const std::exception& e) {
      std::cerr << "sluice-bench: --plots: " << e.what() << "\n";
      status = 1;
    }
  }
  if (!json_file.empty()) {
    json::array sections, failed;
    for (SectionReport& report : reports) sections.push_back(to_json(report));
    for (const Failure& failure : failures) failed.push_back({{"section", failure.section}, {"reason", failure.reason}});
    const json::object document{
        {"schema", "sluice-bench-run/1"},
        {"started_utc", started_utc},
        {"quick", quick},
        {"only", only},
        {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()},
        {"machine", to_json(machine)},
        {"sections", std::move(sections)},
        {"failures", std::move(failed)}};
    try {
      write_atomically(json_file, json::serialize(document) + "\n");
    } catch (const std::exception& e) {
      std::cerr << "sluice-bench: " << e.what() << "\n";
      status = 1;
    }
  }
  std::error_code ignored;
  if (failures.empty()) fs::remove_all(logs, ignored);
  else std::cerr << "sluice-bench: the failed sections' stderr is in " << logs.string() << "\n";
  return status;
}
