// The module ABI over the VM: the JavaScript call glue, the config copied into guest memory, and
// process_each()'s runs of messages (the each-glue and the results it copies out).
#include <v8-script.h>

#include "wasm/sandbox_impl.h"

namespace wasmq::wasm {
namespace {

// Calls from C++ into V8 carry a fixed cost (scopes, context switches, bookkeeping, ~80 ns)
// that calls from optimized JavaScript into wasm do not (~7 ns). The ABI's five guest calls
// per message (alloc, process, dealloc x3) therefore go through two C++ -> V8 calls: this glue,
// then process_message (or process_batch) itself.
//   prepare(len): frees the buffers of the instance's previous call, if the host left any in
//   regs (regs[5] = 1: dealloc(regs[0], regs[1]); dealloc(regs[2], 8); dealloc(regs[3],
//   regs[4])), then returns alloc(len).
// The previous call's buffers are thus freed at the start of the next call on the same
// instance rather than at the end of their own: the guest sees the same calls, in the same
// order, only later; the results were copied out long before.
constexpr char kGlueSource[] = R"JS(
(function (alloc, dealloc, regs) {
  'use strict';
  return function prepare(len) {
    if (regs[5] === 1) {
      regs[5] = 0;
      dealloc(regs[0], regs[1]);
      dealloc(regs[2], 8);
      dealloc(regs[3], regs[4]);
    }
    return alloc(len);
  };
})
)JS";

// Single calls without a C++ -> V8 entry per message: process_each() encodes a run of messages
// into a host buffer and enters V8 once; this loop then makes, per message, exactly the ABI's
// guest calls in the ABI's order (alloc, process_message, dealloc of the result, of the
// WasmResult and of the input), copying the input in and the result bytes out. JavaScript to
// wasm calls cost a few ns, so a light module's message costs what the guest does plus two
// copies. `regs` (host-shared Int32Array):
//   in:  [0] messages, [1] first message to run, [2] max_output_bytes, [3] input offset of [1],
//        [4] output offset
//   out: [1] the message running, or n when all ran (the watchdog's progress counter: each
//        message has its own time limit), [3]/[4] offsets reached, [5] what stopped it: 0 all
//        ran; 1 alloc out of bounds (regs[6] the pointer); 2 null WasmResult pointer; 3
//        WasmResult out of bounds; 4 result over max_output_bytes (regs[6] its length, regs[7] its
//        pointer); 5 result
//        out of bounds; 6 output buffer full: the result of message [1] is left in guest memory
//        (regs[6] input pointer, regs[7] input length, regs[8] WasmResult pointer) for the host,
//        which copies it and leaves its buffers to be freed first thing by the next entry.
// `pending` is the instance's regs of the other glue (kGlueSource): buffers of the last single
// call on the instance, freed first.
constexpr char kEachGlueSource[] = R"JS(
(function (alloc, dealloc, processMessage, memoryObject, regs, pending) {
  'use strict';
  let buf = null, u8 = null, dv = null;
  function views() {
    const b = memoryObject.buffer;
    if (b !== buf) { buf = b; u8 = new Uint8Array(b); dv = new DataView(b); }
  }
  return function each(input, lens, output, outs) {
    if (pending[5] === 1) {
      pending[5] = 0;
      dealloc(pending[0], pending[1]);
      dealloc(pending[2], 8);
      dealloc(pending[3], pending[4]);
    }
    const n = regs[0];
    const maxOut = regs[2];
    const outCap = output.length;
    let i = regs[1];
    let inOff = regs[3];
    let outOff = regs[4];
    for (; i < n; i++) {
      regs[1] = i;
      regs[3] = inOff;
      regs[4] = outOff;
      const len = lens[i];
      const ptr = alloc(len);
      views();
      const p = ptr >>> 0;
      if ((p === 0 && len > 0) || p + len > buf.byteLength) { regs[5] = 1; regs[6] = ptr; return; }
      u8.set(input.subarray(inOff, inOff + len), p);
      const res = processMessage(ptr, len) >>> 0;
      views();
      if (res === 0) { regs[5] = 2; return; }
      if (res + 8 > buf.byteLength) { regs[5] = 3; return; }
      const rptr = dv.getUint32(res, true);
      const rlen = dv.getUint32(res + 4, true);
      if (rlen > maxOut) { regs[5] = 4; regs[6] = rlen; regs[7] = rptr; return; }
      if (rptr + rlen > buf.byteLength) { regs[5] = 5; return; }
      if (outOff + rlen > outCap) {
        regs[5] = 6; regs[6] = ptr; regs[7] = len; regs[8] = res;
        return;
      }
      output.set(u8.subarray(rptr, rptr + rlen), outOff);
      outs[i] = rlen;
      outOff += rlen;
      inOff += len;
      dealloc(rptr, rlen);
      dealloc(res, 8);
      dealloc(ptr, len);
    }
    regs[1] = n;
    regs[3] = inOff;
    regs[4] = outOff;
    regs[5] = 0;
  };
})
)JS";

}  // namespace

Status Sandbox::Impl::compile_glue(v8::Local<v8::Context> ctx) {
  v8::Local<v8::Script> script;
  v8::Local<v8::Value> factory;
  if (!v8::Script::Compile(ctx, v8::String::NewFromUtf8Literal(isolate, kGlueSource))
           .ToLocal(&script) ||
      !script->Run(ctx).ToLocal(&factory) || !factory->IsFunction()) {
    return Status(StatusCode::kInternal, "cannot compile the call glue");
  }
  glue_factory.Reset(isolate, factory.As<v8::Function>());
  if (!v8::Script::Compile(ctx, v8::String::NewFromUtf8Literal(isolate, kEachGlueSource))
           .ToLocal(&script) ||
      !script->Run(ctx).ToLocal(&factory) || !factory->IsFunction()) {
    return Status(StatusCode::kInternal, "cannot compile the per-message call loop");
  }
  each_glue_factory.Reset(isolate, factory.As<v8::Function>());
  each_regs_store = v8::ArrayBuffer::NewBackingStore(isolate, 16 * sizeof(int32_t));
  std::memset(each_regs_store->Data(), 0, 16 * sizeof(int32_t));
  each_regs.Reset(
      isolate, v8::Int32Array::New(v8::ArrayBuffer::New(isolate, each_regs_store), 0, 16));
  return Status::ok();
}

Status Sandbox::Impl::write_guest(Instance* inst, std::string_view data, int32_t* ptr) {
  if (!call(inst->alloc, {static_cast<int32_t>(data.size())}, ptr)) return caught();
  uint8_t* dst = view(inst).range(static_cast<uint32_t>(*ptr), data.size());
  if (!dst || (*ptr == 0 && !data.empty())) {
    return failed("alloc(" + std::to_string(data.size()) + ") returned an out-of-bounds pointer");
  }
  std::memcpy(dst, data.data(), data.size());
  return Status::ok();
}

bool Sandbox::Impl::each_function(Instance* inst, v8::Local<v8::Function>* out) {
  if (inst->each.IsEmpty()) {
    v8::Local<v8::Context> ctx = context.Get(isolate);
    v8::Local<v8::Value> args[] = {inst->alloc.Get(isolate),           inst->dealloc.Get(isolate),
                                   inst->process_message.Get(isolate), inst->memory.Get(isolate),
                                   each_regs.Get(isolate),             inst->regs.Get(isolate)};
    v8::Local<v8::Value> each;
    if (!each_glue_factory.Get(isolate)
             ->Call(ctx, v8::Undefined(isolate), 6, args)
             .ToLocal(&each) ||
        !each->IsFunction()) {
      return false;
    }
    inst->each.Reset(isolate, each.As<v8::Function>());
  }
  *out = inst->each.Get(isolate);
  return true;
}

Status Sandbox::Impl::run_each(const Module& module, Instance* inst, size_t n, size_t* next,
                               size_t* input_offset, std::vector<Result<ProcessResult>>& out) {
  int32_t* regs = static_cast<int32_t*>(each_regs_store->Data());
  v8::Local<v8::Function> each;
  if (!each_function(inst, &each)) return caught();
  v8::Local<v8::Context> ctx = context.Get(isolate);
  const auto max_output = static_cast<int32_t>(
      std::min<uint64_t>(module.settings().max_output_bytes, INT32_MAX));
  for (;;) {
    regs[0] = static_cast<int32_t>(n);
    regs[1] = static_cast<int32_t>(*next);
    regs[2] = max_output;
    regs[3] = static_cast<int32_t>(*input_offset);
    regs[4] = 0;
    regs[5] = 0;
    v8::Local<v8::Value> args[] = {
        view_of<v8::Uint8Array>(each_input, each_input.capacity),
        view_of<v8::Int32Array>(each_lens, n),
        view_of<v8::Uint8Array>(each_output, each_output.capacity),
        view_of<v8::Int32Array>(each_outs, n)};
    const bool returned = !each->Call(ctx, v8::Undefined(isolate), 4, args).IsEmpty();
    // Whatever stopped the loop, the results it copied out are good.
    const auto* lens = reinterpret_cast<const int32_t*>(each_outs.data());
    const size_t reached = static_cast<size_t>(regs[1]);
    size_t offset = 0;
    for (size_t k = *next; k < reached && k < n; ++k) {
      const size_t len = static_cast<size_t>(lens[k]);
      ProcessResult r;
      Status decoded =
          bincode::decode(std::span<const uint8_t>(each_output.data() + offset, len), &r);
      offset += len;
      if (decoded.is_ok()) {
        out[k] = std::move(r);
      } else {
        out[k] = failed("invalid result encoding: " + decoded.message());
      }
    }
    stats.calls += reached - *next;
    *next = std::min(reached, n);
    *input_offset = static_cast<size_t>(regs[3]);
    measure(inst);
    if (!returned) return caught();
    switch (regs[5]) {
      case 0:
        return Status::ok();
      case 1:
        return failed("alloc(" + std::to_string(lens_in(*next)) +
                      ") returned an out-of-bounds pointer");
      case 2:
        return failed("module returned a null result pointer");
      case 3:
        return failed("result pointer out of bounds");
      case 4:
        return output_limit_exceeded(static_cast<uint32_t>(regs[7]),
                                     static_cast<uint32_t>(regs[6]),
                                     module.settings().max_output_bytes);
      case 5:
        return failed("result data out of bounds");
      case 6:
        break;  // below
      default:
        return failed("the call loop stopped for an unknown reason");
    }
    // The output buffer is full: take this message's result from guest memory (the glue
    // checked its bounds), leave its buffers for the next entry to free, grow, go on.
    const size_t k = *next;
    const auto input_ptr = static_cast<uint32_t>(regs[6]);
    const auto input_len = static_cast<uint32_t>(regs[7]);
    Status s = read_output(module, inst, regs[8], input_ptr, input_len,
                           [&](std::span<const uint8_t> bytes) {
                             reserve(each_output, bytes.size() * 2);
                             ProcessResult r;
                             Status decoded = bincode::decode(bytes, &r);
                             if (decoded.is_ok()) out[k] = std::move(r);
                             return decoded;
                           });
    if (!s.is_ok()) return s;
    ++stats.calls;
    *next = k + 1;
    *input_offset += input_len;
    if (*next >= n) return Status::ok();
  }
}

}  // namespace wasmq::wasm
