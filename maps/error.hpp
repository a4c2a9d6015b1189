#pragma once
// Errors of the map layer. Every failing libbpf call becomes an Error whose
// message names the map (or path), the operation and the errno in words, so a
// log line or a control-socket reply explains itself without the caller
// adding context. Never a bare -1.
#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

namespace sluice::maps {

struct Error {
  // Declared constructors keep Error from being constructible from a single
  // number (C++20 parenthesised aggregate init), which would make
  // Result<bool>/Result<size_t> ambiguous between value and error.
  Error() = default;
  Error(int errnum_, std::string message_, std::size_t done_ = 0)
      : errnum(errnum_), message(std::move(message_)), done(done_) {}

  int errnum = 0;       // positive errno (EEXIST, ENOENT, E2BIG, ...)
  std::string message;  // "update conn_table: key exists (EEXIST)"
  // Batch operations only: how many elements were completed before the failure.
  std::size_t done = 0;
};

template <class T>
using Result = boost::system::result<T, Error>;

// What the errno refers to: the same number reads differently for an element
// ("no such key") and for a bpffs path ("no such file").
enum class ErrnoSubject { Element, Path, Other };

// "ENXIO" (the kernel's ENOTSUPP, 524, included); "errno N" for an unknown number.
std::string errno_symbol(int errnum);

// "key exists (EEXIST)"
std::string describe_errno(int errnum, ErrnoSubject subject = ErrnoSubject::Other);

// "<operation> <object>: <errno in words> (<ENAME>)"
Error make_error(std::string_view operation, std::string_view object, int errnum,
                 ErrnoSubject subject = ErrnoSubject::Other);

// "<operation> <object>: <reason> (<ENAME>)" for errors we detect ourselves.
Error make_error_because(std::string_view operation, std::string_view object,
                         std::string_view reason, int errnum);

// Thrown by Result<T>::value() on an error: what() is the message, code() the errno.
class MapError : public std::system_error {
 public:
  explicit MapError(const Error& error);
  const Error& error() const noexcept { return error_; }
  // The map message alone, without std::system_error's ": <strerror>" suffix.
  const char* what() const noexcept override { return error_.message.c_str(); }

 private:
  Error error_;
};

// Found by ADL from boost::system::result<T, Error>::value().
[[noreturn]] void throw_exception_from_error(const Error& error, const boost::source_location& where);

}  // namespace sluice::maps
