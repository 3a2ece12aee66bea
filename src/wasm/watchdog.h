// Ends guest calls that run past their deadline, with V8's TerminateExecution.
//
// One process-wide thread watches every registered isolate. Arming and disarming a call are a
// store and a compare-and-swap on the calling thread, no lock and no system call in the common
// case, so guarding every guest call costs nanoseconds.
//
// The generation guard: each armed call has a generation number; the watchdog terminates only
// the generation it saw armed and past its deadline, and disarm() tells the caller whether its
// own call was terminated. A terminate can therefore never leak into the next call, as long as
// the caller runs CancelTerminateExecution() whenever disarm() returns true.
#pragma once

#include <atomic>
#include <cstdint>

namespace v8 {
class Isolate;
}

namespace wasmq::wasm {

class Watchdog {
 public:
  // The per-isolate state the watchdog reads. Owned by the watchdog; used by one thread.
  struct Slot {
    v8::Isolate* isolate = nullptr;
    std::atomic<uint64_t> state{0};  // generation << 2 | phase
    std::atomic<int64_t> deadline_ns{0};
  };

  static Watchdog& instance();

  // Registers an isolate; the slot lives until unregister_isolate. Any thread.
  Slot* register_isolate(v8::Isolate* isolate);
  void unregister_isolate(Slot* slot);

  // Starts watching a call on `slot` that must end within `timeout_ms`. Owner thread only.
  void arm(Slot* slot, uint32_t timeout_ms);
  // Stops watching. Returns true when the watchdog terminated this call (or is past doing so);
  // the caller must then CancelTerminateExecution() once no JavaScript runs. Owner thread only.
  bool disarm(Slot* slot);

 private:
  Watchdog();
  void run();
  struct State;
  State* state_;
};

}  // namespace wasmq::wasm
