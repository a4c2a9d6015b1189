#include "error.hpp"

#include <cerrno>
#include <cstring>
#include <system_error>

namespace sluice::maps {
namespace {

// The kernel answers -ENOTSUPP (524, kernel-internal, not in <errno.h>) for
// some unsupported map operations; name it so messages stay readable.
constexpr int kKernelENOTSUPP = 524;

// Words that read right for a map element; nullptr means "use strerror".
const char* element_words(int errnum) {
  switch (errnum) {
    case EEXIST: return "key exists";
    case ENOENT: return "no such key";
    case E2BIG: return "map full";
    case ENOSPC: return "buffer too small";
    default: return nullptr;
  }
}

const char* path_words(int errnum) {
  switch (errnum) {
    case ENOENT: return "no such file";
    case EEXIST: return "file exists";
    case ENOTDIR: return "not a directory";
    case EPERM: return "not on a bpffs mount or not permitted";
    default: return nullptr;
  }
}

std::string strerror_words(int errnum) {
  if (errnum == kKernelENOTSUPP) return "operation not supported";
  std::string words = std::strerror(errnum);
  if (!words.empty() && words[0] >= 'A' && words[0] <= 'Z' && !(words.size() > 1 && words[1] >= 'A' && words[1] <= 'Z'))
    words[0] = static_cast<char>(words[0] - 'A' + 'a');
  return words;
}

}  // namespace

std::string errno_symbol(int errnum) {
  if (errnum == kKernelENOTSUPP) return "ENOTSUPP";
  if (const char* name = strerrorname_np(errnum)) return name;
  return "errno " + std::to_string(errnum);
}

std::string describe_errno(int errnum, ErrnoSubject subject) {
  const char* words = nullptr;
  if (subject == ErrnoSubject::Element) words = element_words(errnum);
  if (subject == ErrnoSubject::Path) words = path_words(errnum);
  std::string text = words ? std::string(words) : strerror_words(errnum);
  return text + " (" + errno_symbol(errnum) + ")";
}

Error make_error(std::string_view operation, std::string_view object, int errnum, ErrnoSubject subject) {
  std::string message{operation};
  message += ' ';
  message += object;
  message += ": ";
  message += describe_errno(errnum, subject);
  return Error{errnum, std::move(message)};
}

Error make_error_because(std::string_view operation, std::string_view object, std::string_view reason,
                         int errnum) {
  std::string message{operation};
  message += ' ';
  message += object;
  message += ": ";
  message += reason;
  message += " (" + errno_symbol(errnum) + ")";
  return Error{errnum, std::move(message)};
}

MapError::MapError(const Error& error)
    : std::system_error(std::error_code(error.errnum, std::generic_category()), error.message), error_(error) {}

void throw_exception_from_error(const Error& error, const boost::source_location&) { throw MapError(error); }

}  // namespace sluice::maps
