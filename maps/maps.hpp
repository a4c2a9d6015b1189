#pragma once
// Everything of the map layer in one include.
#include "error.hpp"
#include "kv_map.hpp"
#include "map_fd.hpp"
#include "map_ops.hpp"
#include "prefix.hpp"
#include "program_maps.hpp"
#include "ring_buffer.hpp"
