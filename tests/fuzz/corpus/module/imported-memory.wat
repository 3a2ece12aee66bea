;; Refused: the memory is imported, not defined by the module; a custom section rides along.
(module
  (import "env" "memory" (memory 1))
  (@custom "name-of-something" "payload")
  (export "memory" (memory 0))
  (func (export "alloc") (param i32) (result i32) (i32.const 0))
  (func (export "dealloc") (param i32 i32))
  (func (export "process_message") (param i32 i32) (result i32) (i32.const 0)))
