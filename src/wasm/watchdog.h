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
    // Calls that run many guest steps (arm_steps): a counter the guest side advances at each
    // step, and the time one step may take; null/0 otherwise.
    std::atomic<const int32_t*> progress{nullptr};
    std::atomic<int64_t> step_ns{0};
    std::atomic<int64_t> armed_ns{0};
    // The watchdog thread's own: the generation and progress it last saw, and when.
    uint64_t seen_generation = 0;
    int32_t seen_progress = 0;
    int64_t step_deadline_ns = 0;
  };

  static Watchdog& instance();

  // Registers an isolate; the slot lives until unregister_isolate. Any thread.
  Slot* register_isolate(v8::Isolate* isolate);
  void unregister_isolate(Slot* slot);

  // Starts watching a call on `slot` that must end within `timeout_ms`. Owner thread only.
  void arm(Slot* slot, uint32_t timeout_ms);
  // Starts watching a call that runs guest steps one after another (the per-message loop of
  // Sandbox::process_each): it must end within `timeout_ms`, and each step within
  // `step_timeout_ms`. `*progress` changes when a step starts; the watchdog looks at it at
  // least every quarter of `step_timeout_ms`, so a step is ended after between 1 and 1.25 times
  // its limit. `progress` must stay valid until disarm(). Owner thread only.
  void arm_steps(Slot* slot, uint32_t timeout_ms, uint32_t step_timeout_ms,
                 const int32_t* progress);
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
