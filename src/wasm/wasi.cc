#include "wasm/wasi.h"

#include <sys/random.h>
#include <v8-external.h>
#include <v8-function.h>
#include <v8-isolate.h>
#include <v8-primitive.h>
#include <v8-template.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>
#include <ctime>

#include "wasm/binary.h"

namespace wasmq::wasm {
namespace {

using Args = v8::FunctionCallbackInfo<v8::Value>;

WasiHost* host_of(const Args& args) {
  return static_cast<WasiHost*>(args.Data().As<v8::External>()->Value());
}

uint32_t u32_arg(const Args& args, int i) {
  v8::Local<v8::Value> v = args[i];
  return v->IsInt32() ? static_cast<uint32_t>(v.As<v8::Int32>()->Value()) : 0;
}

void ret(const Args& args, int32_t value) { args.GetReturnValue().Set(value); }

// Guest memory of the calling instance with bounds checks.
class Memory {
 public:
  explicit Memory(WasiHost* host) { host->guest_memory(&base_, &size_); }
  // Returns a host pointer to [ptr, ptr + len) or nullptr when any of it is out of bounds.
  uint8_t* range(uint32_t ptr, uint64_t len) const {
    if (!base_ || ptr > size_ || len > size_ - ptr) return nullptr;
    return base_ + ptr;
  }
  bool store_u32(uint32_t ptr, uint32_t v) const {
    uint8_t* p = range(ptr, 4);
    if (p) std::memcpy(p, &v, 4);
    return p;
  }
  bool store_u64(uint32_t ptr, uint64_t v) const {
    uint8_t* p = range(ptr, 8);
    if (p) std::memcpy(p, &v, 8);
    return p;
  }

 private:
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
};

// (count_ptr, size_ptr) -> errno: args and environment are empty.
void empty_sizes(const Args& args) {
  Memory m(host_of(args));
  bool ok = m.store_u32(u32_arg(args, 0), 0) && m.store_u32(u32_arg(args, 1), 0);
  ret(args, ok ? kWasiSuccess : kWasiFault);
}

void empty_list(const Args& args) { ret(args, kWasiSuccess); }

void clock_time_get(const Args& args) {
  uint32_t id = u32_arg(args, 0);
  timespec ts{};
  if (id == 0) {
    clock_gettime(CLOCK_REALTIME, &ts);
  } else if (id == 1) {
    clock_gettime(CLOCK_MONOTONIC, &ts);
  } else {
    return ret(args, kWasiInvalid);
  }
  uint64_t ns = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + ts.tv_nsec;
  ret(args, Memory(host_of(args)).store_u64(u32_arg(args, 2), ns) ? kWasiSuccess : kWasiFault);
}

void clock_res_get(const Args& args) {
  uint32_t id = u32_arg(args, 0);
  if (id > 1) return ret(args, kWasiInvalid);
  ret(args, Memory(host_of(args)).store_u64(u32_arg(args, 1), 1) ? kWasiSuccess : kWasiFault);
}

void random_get(const Args& args) {
  uint32_t len = u32_arg(args, 1);
  uint8_t* p = Memory(host_of(args)).range(u32_arg(args, 0), len);
  if (!p) return ret(args, kWasiFault);
  size_t done = 0;
  while (done < len) {
    ssize_t n = getrandom(p + done, len - done, 0);
    if (n <= 0) return ret(args, kWasiInvalid);
    done += static_cast<size_t>(n);
  }
  ret(args, kWasiSuccess);
}

// fd_write(fd, iovs, iovs_len, nwritten_ptr): fds 1 and 2 go to the host's log, line by line.
// A guest can describe far more bytes than its memory holds (every iovec may cover the whole
// memory), so nothing here is sized by the sum: the host forwards at most kMaxWriteBytesPerCall
// bytes of one call, holds at most one line of kMaxOutputLineBytes, and counts the rest as
// dropped. Every byte is reported as written (nwritten = the sum), as a log that drops output
// would: reporting less makes wasi-libc write the rest again, in a loop.
void fd_write(const Args& args) {
  WasiHost* host = host_of(args);
  uint32_t fd = u32_arg(args, 0);
  if (fd != 1 && fd != 2) return ret(args, kWasiBadFd);
  Memory m(host);
  uint32_t iovs = u32_arg(args, 1);
  uint32_t count = u32_arg(args, 2);
  if (count > kMaxWriteIovecs) return ret(args, kWasiInvalid);
  if (!m.range(iovs, static_cast<uint64_t>(count) * 8)) return ret(args, kWasiFault);
  auto iovec = [&](uint32_t i, uint32_t* ptr, uint32_t* len) {
    std::memcpy(ptr, m.range(iovs + i * 8, 4), 4);
    std::memcpy(len, m.range(iovs + i * 8 + 4, 4), 4);
  };
  uint64_t total = 0;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t ptr, len;
    iovec(i, &ptr, &len);
    if (!m.range(ptr, len)) return ret(args, kWasiFault);
    total += len;
  }
  // POSIX writev: EINVAL when the sum overflows the guest's ssize_t (i32 on wasm32).
  if (total > static_cast<uint64_t>(INT32_MAX)) return ret(args, kWasiInvalid);

  uint64_t budget = kMaxWriteBytesPerCall;
  uint64_t dropped = 0;
  std::string line;
  bool line_open = false;  // bytes seen since the last newline
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t ptr, len;
    iovec(i, &ptr, &len);
    const uint64_t take = std::min<uint64_t>(len, budget);
    budget -= take;
    dropped += len - take;
    const char* p = reinterpret_cast<const char*>(m.range(ptr, len));
    const char* end = p + take;
    while (p < end) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', end - p));
      const char* stop = nl ? nl : end;
      const size_t room = kMaxOutputLineBytes - line.size();
      const size_t n = static_cast<size_t>(stop - p);
      line.append(p, std::min(n, room));
      if (n > room) dropped += n - room;
      line_open = true;
      if (!nl) break;
      host->module_output(static_cast<int>(fd), line, true);
      line.clear();
      line_open = false;
      p = nl + 1;
    }
  }
  if (line_open) host->module_output(static_cast<int>(fd), line, false);
  if (dropped > 0) host->module_output_dropped(static_cast<int>(fd), dropped);
  if (!m.store_u32(u32_arg(args, 3), static_cast<uint32_t>(total))) return ret(args, kWasiFault);
  ret(args, kWasiSuccess);
}

void proc_exit(const Args& args) {
  host_of(args)->module_exit(static_cast<int32_t>(u32_arg(args, 0)));
  v8::Isolate* isolate = args.GetIsolate();
  isolate->ThrowError(v8::String::NewFromUtf8Literal(isolate, "proc_exit"));
}

void sched_yield(const Args& args) { ret(args, kWasiSuccess); }

// fd_fdstat_get(fd, stat_ptr): stdout and stderr are character devices that can be written and
// not sought, which is what wasi-libc's isatty() asks, so a C module's stdout is line-buffered
// (as on a terminal) instead of held in a 1 KiB buffer that a call may never fill. Every other
// descriptor is bad.
void fd_fdstat_get(const Args& args) {
  const uint32_t fd = u32_arg(args, 0);
  if (fd != 1 && fd != 2) return ret(args, kWasiBadFd);
  constexpr uint8_t kCharacterDevice = 2;
  constexpr uint64_t kRightFdWrite = 1u << 6;
  uint8_t stat[24] = {};  // filetype u8, flags u16 at 2, rights_base u64 at 8, inheriting at 16
  stat[0] = kCharacterDevice;
  std::memcpy(stat + 8, &kRightFdWrite, sizeof kRightFdWrite);
  uint8_t* p = Memory(host_of(args)).range(u32_arg(args, 1), sizeof stat);
  if (!p) return ret(args, kWasiFault);
  std::memcpy(p, stat, sizeof stat);
  ret(args, kWasiSuccess);
}

// No files exist: every descriptor is bad (this also ends wasi-libc's preopen scan).
void bad_fd(const Args& args) { ret(args, kWasiBadFd); }

v8::FunctionCallback callback_for(std::string_view name) {
  if (name == "args_sizes_get" || name == "environ_sizes_get") return empty_sizes;
  if (name == "args_get" || name == "environ_get") return empty_list;
  if (name == "clock_time_get") return clock_time_get;
  if (name == "clock_res_get") return clock_res_get;
  if (name == "random_get") return random_get;
  if (name == "fd_write") return fd_write;
  if (name == "proc_exit") return proc_exit;
  if (name == "sched_yield") return sched_yield;
  if (name == "fd_fdstat_get") return fd_fdstat_get;
  return bad_fd;
}

}  // namespace

v8::Local<v8::Object> make_wasi_imports(v8::Isolate* isolate, v8::Local<v8::Context> context,
                                        WasiHost* host) {
  v8::EscapableHandleScope scope(isolate);
  v8::Local<v8::External> data = v8::External::New(isolate, host);
  v8::Local<v8::Object> wasi = v8::Object::New(isolate);
  for (const WasiFunction& f : supported_wasi_functions()) {
    v8::Local<v8::Function> fn =
        v8::Function::New(context, callback_for(f.name), data).ToLocalChecked();
    wasi->Set(context, v8::String::NewFromUtf8(isolate, f.name).ToLocalChecked(), fn).Check();
  }
  v8::Local<v8::Object> imports = v8::Object::New(isolate);
  imports->Set(context, v8::String::NewFromUtf8(isolate, kWasiModule).ToLocalChecked(), wasi).Check();
  return scope.Escape(imports);
}

}  // namespace wasmq::wasm
