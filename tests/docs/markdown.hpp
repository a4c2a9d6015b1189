#pragma once
// Reading the documentation in tests: whole files, lines, fenced blocks.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace sluice::test::markdown {

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

inline bool is_fence(const std::string& line) { return line.rfind("```", 0) == 0; }

// The bodies of the ```yaml fenced blocks of a markdown file, in order.
inline std::vector<std::string> yaml_blocks(const std::filesystem::path& file) {
  std::vector<std::string> out;
  std::string block;
  bool in_yaml = false;
  for (const auto& line : lines_of(read_text(file))) {
    if (!in_yaml && line == "```yaml") {
      in_yaml = true;
      block.clear();
    } else if (in_yaml && line == "```") {
      in_yaml = false;
      out.push_back(block);
    } else if (in_yaml) {
      block += line + "\n";
    }
  }
  return out;
}

}  // namespace sluice::test::markdown
