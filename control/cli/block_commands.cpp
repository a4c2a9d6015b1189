#include "block_commands.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "filter_commands.hpp"
#include "utf8.hpp"

namespace sluice::cli {
namespace {

// block list may hold a million prefixes: two passes over the reply instead
// of a Table holding a copy of every row.
void render_block_list(std::ostream& out, const json::value& result) {
  const json::array& prefixes = array_field(as_object(result, "block.list result"), "prefixes");
  if (prefixes.empty()) {
    out << "no prefixes listed\n";
    return;
  }
  constexpr std::string_view kHeader = "PREFIX";
  std::size_t width = kHeader.size();
  for (const auto& item : prefixes) width = std::max(width, field(as_object(item, "prefix entry"), "prefix").size());
  auto line = [&](const std::string& prefix, const std::string& action) {
    out << prefix << std::string(width - prefix.size(), ' ') << kGap << action << '\n';
  };
  line(std::string(kHeader), "ACTION");
  for (const auto& item : prefixes) {
    const json::object& entry = item.as_object();
    line(field(entry, "prefix"), action_text(entry));
  }
}

std::string plural(std::uint64_t count, std::string_view one, std::string_view many) {
  return std::to_string(count) + " " + std::string(count == 1 ? one : many);
}

// What the parsed command line holds; shared by the callbacks, alive as long as the App.
struct BlockArgs {
  std::vector<std::string> prefixes;
  std::optional<std::string> filter_action;  // block add / block load
  std::string block_file;
};

// A prefix file of any size, streamed to sluiced in one load: begin,
// chunks of whole lines, commit; the daemon parses and checks every line
// and makes the whole file live at commit or nothing of it. Lines a JSON
// request cannot carry (invalid UTF-8) or that are over the line limit are
// refused here with FILE:LINE, and the load aborted. A progress line is
// drawn on a terminal only.
constexpr std::size_t kLoadChunkBytes = 128 * 1024;  // even all escaped (\u00XX) it fits one request
constexpr std::size_t kLoadReadBytes = 64 * 1024;
constexpr std::size_t kLoadLineBytes = 4096;  // as filter::kMaxPrefixFileLineBytes

int stream_block_load(Context& ctx, const std::string& path, const std::optional<std::string>& action) {
  const std::string source = path == "-" ? "standard input" : path;
  std::ifstream file;
  std::istream* in = &ctx.env().in;
  std::optional<std::uintmax_t> total;
  if (path != "-") {
    file.open(path, std::ios::binary);
    if (!file) return ctx.usage("cannot read " + path + ": " + std::strerror(errno));
    std::error_code size_error;
    if (const auto size = std::filesystem::file_size(path, size_error); !size_error) total = size;
    in = &file;
  }
  const bool show_progress = ::isatty(STDOUT_FILENO) == 1 && !ctx.options().json;
  json::object begin_args{{"source", source}};
  if (action) begin_args["action"] = *action;
  auto begun = ctx.raw_call("block.load.begin", begin_args);
  if (!begun) return ctx.report("block.load.begin", begun.error());
  const auto id = begun->is_object() ? uint_field(begun->as_object(), "load") : std::nullopt;
  if (!id) return ctx.report("block.load.begin", CallFailure{std::nullopt, TransportError("no load id in the reply")});
  auto give_up = [&](int code) {
    if (show_progress) ctx.env().out << "\r\033[K" << std::flush;
    (void)ctx.raw_call("block.load.abort", {{"load", *id}});  // nothing was committed either way
    return code;
  };
  std::uintmax_t sent = 0;
  std::size_t line = 0;
  std::string pending, buffer(kLoadReadBytes, '\0');
  auto send = [&]() -> std::optional<int> {
    auto done = ctx.raw_call("block.load.chunk", {{"load", *id}, {"data", pending}});
    if (!done) {
      if (show_progress) ctx.env().out << "\r\033[K" << std::flush;
      return ctx.report("block.load.chunk", done.error());  // the daemon ended the load: FILE:LINE: reason
    }
    sent += pending.size();
    pending.clear();
    if (show_progress) {
      ctx.env().out << "\rloading " << source << ": " << line << " lines";
      if (total && *total) ctx.env().out << " (" << sent * 100 / *total << "%)";
      ctx.env().out << std::flush;
    }
    return std::nullopt;
  };
  std::string carry;  // a line whose newline has not been read yet
  auto check_line = [&](std::string_view text) -> std::optional<std::string> {
    ++line;
    const std::string where = source + ":" + std::to_string(line) + ": ";
    if (text.size() > kLoadLineBytes)
      return where + "a line of " + std::to_string(text.size()) + " bytes, over the " + std::to_string(kLoadLineBytes) + "-byte limit";
    if (auto bad = filter::invalid_utf8_at(text)) {
      std::ostringstream hex;
      hex << "invalid UTF-8 at byte " << *bad + 1 << ": '";
      for (std::size_t i = 0; i < text.size() && i < 40; ++i) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte >= 0x20 && byte < 0x7f) hex << text[i];
        else hex << "\\x" << "0123456789abcdef"[byte >> 4] << "0123456789abcdef"[byte & 15];
      }
      hex << (text.size() > 40 ? "'..." : "'");
      return where + hex.str();
    }
    return std::nullopt;
  };
  for (;;) {
    in->read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto got = static_cast<std::size_t>(in->gcount());
    if (in->bad()) return give_up(ctx.usage("cannot read " + source));
    std::string_view data(buffer.data(), got);
    while (!data.empty()) {
      const std::size_t end = data.find('\n');
      if (end == std::string_view::npos) {
        carry.append(data);
        if (carry.size() > kLoadLineBytes) {
          if (auto problem = check_line(carry)) return give_up(ctx.usage(*problem));
        }
        break;
      }
      std::string_view text = data.substr(0, end);
      if (!carry.empty()) {
        carry.append(text);
        text = carry;
      }
      if (auto problem = check_line(text)) return give_up(ctx.usage(*problem));
      pending.append(text);
      pending += '\n';
      carry.clear();
      data.remove_prefix(end + 1);
      if (pending.size() >= kLoadChunkBytes)
        if (auto failed = send()) return *failed;
    }
    if (got < buffer.size()) break;
  }
  if (!carry.empty()) {
    // Sent without a newline: the daemon refuses a cut-off last line at commit, naming it.
    if (auto problem = check_line(carry)) return give_up(ctx.usage(*problem));
    pending.append(carry);
  }
  if (!pending.empty())
    if (auto failed = send()) return *failed;
  auto committed = ctx.raw_call("block.load.commit", {{"load", *id}});
  if (show_progress) ctx.env().out << "\r\033[K" << std::flush;
  if (!committed) return ctx.report("block.load.commit", committed.error());
  if (ctx.options().json) {
    ctx.env().out << json::serialize(*committed) << '\n';
    return kExitOk;
  }
  const auto loaded = committed->is_object() ? uint_field(committed->as_object(), "loaded") : std::nullopt;
  ctx.env().out << "loaded " << plural(loaded.value_or(0), "prefix", "prefixes") << " from " << source << '\n';
  return kExitOk;
}

void add_block(CLI::App& app, const std::shared_ptr<BlockArgs>& a, const std::function<void(Action)>& set_action) {
  auto* block = app.add_subcommand("block", "Source prefix lists: drop, pass or rate-limit whole prefixes");
  block->require_subcommand(1);

  auto* add = block->add_subcommand("add", "Add source prefixes (or change their action)");
  add->add_option("CIDR", a->prefixes, "IPv4/IPv6 prefixes; a bare address is a /32 or /128")
      ->required()
      ->check(prefix_validator());
  add->add_option("--action", a->filter_action, "drop (default), pass, or limit:CLASS (rate-limit per source)")
      ->check(action_validator(false));
  add->callback([a, set_action] {
    set_action([a](Context& ctx) {
      json::array prefixes;
      for (const auto& prefix : a->prefixes) prefixes.push_back(json::string(canonical_prefix(prefix)));
      json::object args{{"prefixes", std::move(prefixes)}};
      if (a->filter_action) {
        std::string problem;
        auto action = parse_filter_action(*a->filter_action, false, problem);
        if (!action) return ctx.usage("--action: " + problem);
        args["action"] = action->action;
        if (action->rate_class) args["rate_class"] = *action->rate_class;
      }
      return ctx.call("block.add", args, [&](const json::value& r) {
        const auto added = uint_field(as_object(r, "block.add result"), "added").value_or(a->prefixes.size());
        ctx.env().out << "added " << plural(added, "prefix", "prefixes") << '\n';
      });
    });
  });

  auto* del = block->add_subcommand("del", "Remove source prefixes (each must be listed)");
  del->add_option("CIDR", a->prefixes, "Prefixes exactly as listed")->required()->check(prefix_validator());
  del->callback([a, set_action] {
    set_action([a](Context& ctx) {
      json::array prefixes;
      for (const auto& prefix : a->prefixes) prefixes.push_back(json::string(canonical_prefix(prefix)));
      return ctx.call("block.del", {{"prefixes", std::move(prefixes)}}, [&](const json::value& r) {
        const auto removed = uint_field(as_object(r, "block.del result"), "removed").value_or(a->prefixes.size());
        ctx.env().out << "removed " << plural(removed, "prefix", "prefixes") << '\n';
      });
    });
  });

  auto* load = block->add_subcommand(
      "load", "Add every prefix of a file: one CIDR per line, optional action word after it, # comments");
  load->add_option("FILE", a->block_file, "The file; - reads standard input")->required();
  load->add_option("--action", a->filter_action, "Action of lines that name none: drop (default) or pass")
      ->check(CLI::IsMember({"drop", "pass"}));
  load->callback([a, set_action] {
    set_action([a](Context& ctx) { return stream_block_load(ctx, a->block_file, a->filter_action); });
  });

  auto* list = block->add_subcommand("list", "Show the prefix lists: prefix and action");
  list->callback([set_action] {
    set_action([](Context& ctx) {
      return ctx.call("block.list", {}, [&](const json::value& r) { render_block_list(ctx.env().out, r); });
    });
  });
}

}  // namespace

void add_block_commands(CLI::App& app, const std::function<void(Action)>& set_action) {
  add_block(app, std::make_shared<BlockArgs>(), set_action);
}

}  // namespace sluice::cli
