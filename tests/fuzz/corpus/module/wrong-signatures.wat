;; Refused: exports with the wrong signatures, an import outside WASI, a shared memory.
(module
  (import "env" "host_call" (func (param i64) (result i64)))
  (memory (export "memory") 1 2 shared)
  (func (export "alloc") (param i64) (result i64) (i64.const 0))
  (func (export "dealloc") (param i32) (result i32) (i32.const 0))
  (func (export "process_message") (param i32 i32) (result i32 i32) (i32.const 0) (i32.const 0)))
