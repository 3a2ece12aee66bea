;; Hostile test module: a funcref table within the bound (1000 elements, no maximum) that
;; process_message grows by 10000 elements at a time until table.grow fails (returns -1). Traps
;; when the table got past the host's bound; otherwise returns the message unchanged.
(module
  (table $t 1000 funcref)
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

  (func (export "process_message") (param $ptr i32) (param $len i32) (result i32)
    (local $res i32)
    (local $wr i32)
    ;; Without a bound this would grow to V8's own maximum (10,000,000 elements).
    (loop $grow
      (br_if $grow
        (i32.ne (table.grow $t (ref.null func) (i32.const 10000)) (i32.const -1))))
    ;; The host's bound is 100,000 elements in all tables.
    (if (i32.gt_u (table.size $t) (i32.const 100000)) (then unreachable))
    (local.set $res (call $alloc (i32.add (local.get $len) (i32.const 10))))
    (i64.store (local.get $res) (i64.const 1))
    (memory.copy (i32.add (local.get $res) (i32.const 8)) (local.get $ptr) (local.get $len))
    (i32.store8 (i32.add (i32.add (local.get $res) (i32.const 8)) (local.get $len)) (i32.const 1))
    (i32.store8 (i32.add (i32.add (local.get $res) (i32.const 9)) (local.get $len)) (i32.const 0))
    (local.set $wr (call $alloc (i32.const 8)))
    (i32.store (local.get $wr) (local.get $res))
    (i32.store offset=4 (local.get $wr) (i32.add (local.get $len) (i32.const 10)))
    (local.get $wr)))
