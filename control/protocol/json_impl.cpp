// Boost.JSON is header-only when its implementation is compiled in exactly
// one translation unit of the program: this one. Everything that links
// sluice_protocol (sluiced, sluicectl, tests) gets it from here; no other
// .cpp may include <boost/json/src.hpp>.
#include <boost/json/src.hpp>
