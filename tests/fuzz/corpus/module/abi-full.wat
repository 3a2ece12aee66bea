;; Every optional export and WASI imports with their signatures, an unbounded memory, a start
;; function, data and a table.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") 2)
  (table 2 funcref)
  (global $heap (mut i32) (i32.const 4096))
  (data (i32.const 16) "wasmq")
  (func $start)
  (start $start)
  (func (export "_initialize"))
  (func (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $n)))
    (local.get $p))
  (func (export "dealloc") (param i32 i32))
  (func (export "init_module") (param i32 i32) (result i32) (i32.const 1))
  (func (export "process_message") (param i32 i32) (result i32) (i32.const 0))
  (func (export "process_batch") (param i32 i32) (result i32) (i32.const 0)))
