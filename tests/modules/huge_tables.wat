;; Hostile test module: two funcref tables of 10,000,000 elements each (V8's own maximum), which
;; would live on the isolate's JavaScript heap of every instance. Otherwise a valid ABI module.
(module
  (table 10000000 funcref)
  (table 10000000 funcref)
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 0))
  (func (export "dealloc") (param i32 i32))
  (func (export "process_message") (param i32 i32) (result i32) (i32.const 0)))
