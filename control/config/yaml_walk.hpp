#pragma once
// The walk over a YAML document shared by every section's parser
// (desired_state.cpp, lb_config.cpp): errors with path, line and column,
// bounded echoes of hostile values, and the Walker every node goes through
// (unknown, duplicate and null keys refused; nodes counted against
// kMaxVisitedNodes). Internal to control/config.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "decimal.hpp"
#include "desired_state.hpp"

namespace sluice::config::yaml_walk {

// ---- errors ----

// Internal: thrown while walking the document, turned into a Result at the
// top. Keeps every helper a one-liner instead of threading Results.
struct Failure {
  ParseError error;
};

inline int line_of(const YAML::Mark& mark) { return mark.is_null() ? 0 : mark.line + 1; }
inline int column_of(const YAML::Mark& mark) { return mark.is_null() ? 0 : mark.column + 1; }

[[noreturn]] inline void fail(const std::string& path, std::string message, const YAML::Node& at) {
  const YAML::Mark mark = at.IsDefined() ? at.Mark() : YAML::Mark::null_mark();
  throw Failure{ParseError{path, std::move(message), line_of(mark), column_of(mark)}};
}

inline std::string quoted(std::string_view text) {
  // Values are echoed back to the operator; keep the message one line and
  // bounded even for hostile input.
  constexpr std::size_t kMaxEcho = 64;
  std::string out = "'";
  for (std::size_t i = 0; i < text.size() && i < kMaxEcho; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > kMaxEcho) out += "...";
  out += "'";
  return out;
}

inline std::string kind_name(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null: return "nothing (null)";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

inline std::string join(const std::vector<std::string_view>& words, std::string_view separator) {
  std::string out;
  for (std::size_t i = 0; i < words.size(); ++i) {
    if (i) out += separator;
    out += words[i];
  }
  return out;
}

// ---- the walker: every node visited goes through here ----

class Walker {
 public:
  void visit(const YAML::Node& node, const std::string& path) {
    if (++visited_ > kMaxVisitedNodes)
      fail(path, "document too large: more than " + std::to_string(kMaxVisitedNodes) +
                     " nodes (aliases count each time they are used)",
           node);
  }

  std::string scalar(const YAML::Node& node, const std::string& path, std::string_view what) {
    visit(node, path);
    if (!node.IsScalar()) fail(path, "expected " + std::string(what) + ", got " + kind_name(node), node);
    return node.Scalar();
  }

  // Keys of a mapping, each checked against `allowed`, in document order.
  // Duplicates are errors: yaml-cpp silently keeps one, the operator meant both.
  std::vector<std::pair<std::string, YAML::Node>> fields(const YAML::Node& node, const std::string& path,
                                                         const std::vector<std::string_view>& allowed) {
    visit(node, path);
    if (!node.IsMap()) fail(path, "expected a mapping, got " + kind_name(node), node);
    std::vector<std::pair<std::string, YAML::Node>> out;
    std::set<std::string> seen;
    for (const auto& item : node) {
      const std::string key_path = path.empty() ? "<key>" : path + ".<key>";
      visit(item.first, key_path);
      if (!item.first.IsScalar()) fail(key_path, "keys must be plain names, got " + kind_name(item.first), item.first);
      const std::string key = item.first.Scalar();
      const std::string child = path.empty() ? key : path + "." + key;
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
        fail(child, "unknown key " + quoted(key) + "; expected one of " + join(allowed, ", "), item.first);
      if (!seen.insert(key).second) fail(child, "duplicate key " + quoted(key), item.first);
      // Nothing in the schema is optional-by-null; "key:" with no value is a
      // slip (often a list whose items were deleted). Point at the key line.
      if (item.second.IsNull()) fail(child, "empty value; an empty list is written []", item.first);
      out.emplace_back(key, item.second);
    }
    return out;
  }

  void sequence(const YAML::Node& node, const std::string& path) {
    visit(node, path);
    if (!node.IsSequence()) fail(path, "expected a list, got " + kind_name(node), node);
  }

 private:
  std::size_t visited_ = 0;
};

inline bool boolean(Walker& w, const YAML::Node& node, const std::string& path) {
  const std::string text = w.scalar(node, path, "true or false");
  if (text == "true") return true;
  if (text == "false") return false;
  fail(path, "bad boolean " + quoted(text) + ": expected true or false", node);
}

template <class T>
T number(Walker& w, const YAML::Node& node, const std::string& path, T min, T max) {
  const std::string text = w.scalar(node, path, "a number");
  // The shared strict parser (maps/decimal.hpp), not yaml-cpp's as<T>(), which takes 0x10 and 010 as well.
  const auto parsed = maps::parse_decimal(text, min, max);
  if (!parsed.value) fail(path, "bad number " + parsed.problem, node);
  return static_cast<T>(*parsed.value);
}

}  // namespace sluice::config::yaml_walk
