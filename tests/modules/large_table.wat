;; Test module: a funcref table of 100,000 elements, the host's bound exactly (accepted, and
;; about 1.6 MB of JavaScript heap per instance). Otherwise a valid ABI module that returns
;; nothing.
(module
  (table 100000 funcref)
  (memory (export "memory") 1)
  (func (export "alloc") (param i32) (result i32) (i32.const 16))
  (func (export "dealloc") (param i32 i32))
  (func (export "process_message") (param i32 i32) (result i32) (i32.const 0)))
