;; Test module using exception handling (a tag section): process_message throws a tag carrying
;; the input length and catches it in the same function, then returns the message unchanged
;; (traps if the caught value is wrong).
(module
  (tag $oops (param i32))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 1024))

  (func $alloc (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap
      (i32.and (i32.add (i32.add (global.get $heap) (local.get $n)) (i32.const 7))
               (i32.const -8)))
    (local.get $p))

  (func (export "dealloc") (param i32 i32))

  (func $fail (param $v i32)
    (throw $oops (local.get $v)))

  (func (export "process_message") (param $ptr i32) (param $len i32) (result i32)
    (local $caught i32)
    (local $res i32)
    (local $wr i32)
    (try
      (do (call $fail (local.get $len)))
      (catch $oops (local.set $caught)))
    (if (i32.ne (local.get $caught) (local.get $len)) (then unreachable))
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
