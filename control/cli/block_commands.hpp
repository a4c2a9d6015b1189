#pragma once
// sluicectl's prefix-list commands: block add, del, load and list
// (block_commands.cpp), registered by sluicectl's run(). They build the
// requests of the block.* ops (block load streams a file of any size through
// block.load.begin, .chunk and .commit) and render their replies.
#include <functional>

#include "command_context.hpp"

namespace sluice::cli {

// Adds `block` to app; the command that parses hands its action to set_action.
void add_block_commands(CLI::App& app, const std::function<void(Action)>& set_action);

}  // namespace sluice::cli
