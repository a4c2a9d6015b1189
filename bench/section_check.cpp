// Reads a section's --json output on stdin and checks it is what sluice-bench
// merges (check_section_output): the bench ctests pipe each section into it.
// Exit 0 and one summary line if so; 1 and the reason if not.
#include <iostream>
#include <iterator>
#include <stdexcept>

#include "figure.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: bench_section_check SECTION < report.json\n";
    return 2;
  }
  const std::string text{std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
  try {
    const auto report = sluice::bench::check_section_output(text, argv[1]);
    std::cout << report.section << ": " << report.figures.size() << " figures, schema "
              << sluice::bench::SectionReport::schema << ", CPU " << report.machine.pinned_cpu << "\n";
  } catch (const std::invalid_argument& error) {
    std::cerr << "bench_section_check " << argv[1] << ": " << error.what() << "\n";
    return 1;
  }
  return 0;
}
