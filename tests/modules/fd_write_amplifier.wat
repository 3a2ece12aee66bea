;; Hostile test module: fd_write with 100 iovecs that each cover the whole memory (4 MiB), so one
;; call describes 400 MiB of output. Traps unless fd_write succeeds and reports every byte as
;; written (nwritten = 100 * memory size); then returns the message unchanged.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 64)
  ;; Page 0 is scratch (iovecs at 0, nwritten at 1024); the bump allocator starts at page 1.
  (global $heap (mut i32) (i32.const 65536))

  (func $alloc (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap
      (i32.and (i32.add (i32.add (global.get $heap) (local.get $n)) (i32.const 7))
               (i32.const -8)))
    (local.get $p))

  (func (export "dealloc") (param i32 i32))

  (func (export "process_message") (param $ptr i32) (param $len i32) (result i32)
    (local $i i32)
    (local $size i32)
    (local $res i32)
    (local $wr i32)
    (local.set $size (i32.mul (memory.size) (i32.const 65536)))
    (loop $fill
      (i32.store (i32.mul (local.get $i) (i32.const 8)) (i32.const 0))
      (i32.store (i32.add (i32.mul (local.get $i) (i32.const 8)) (i32.const 4)) (local.get $size))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 100))))
    (if (call $fd_write (i32.const 1) (i32.const 0) (i32.const 100) (i32.const 1024))
      (then unreachable))
    (if (i32.ne (i32.load (i32.const 1024)) (i32.mul (local.get $size) (i32.const 100)))
      (then unreachable))
    ;; ProcessResult { vec![input], should_continue: true, error: None }
    (local.set $res (call $alloc (i32.add (local.get $len) (i32.const 10))))
    (i64.store (local.get $res) (i64.const 1))
    (memory.copy (i32.add (local.get $res) (i32.const 8)) (local.get $ptr) (local.get $len))
    (i32.store8 (i32.add (i32.add (local.get $res) (i32.const 8)) (local.get $len)) (i32.const 1))
    (i32.store8 (i32.add (i32.add (local.get $res) (i32.const 9)) (local.get $len)) (i32.const 0))
    (local.set $wr (call $alloc (i32.const 8)))
    (i32.store (local.get $wr) (local.get $res))
    (i32.store offset=4 (local.get $wr) (i32.add (local.get $len) (i32.const 10)))
    (local.get $wr)))
