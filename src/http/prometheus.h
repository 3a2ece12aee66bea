// Prometheus text exposition format 0.0.4, written family by family (GET /metrics).
#pragma once

#include <string>
#include <string_view>

#include "etl/figures.h"

namespace wasmq::http {

// Builds one Prometheus text document. Numbers are written as integers when they are whole
// (below 1e15), otherwise with 9 significant digits; ±Inf as "+Inf" and "-Inf". One writer per
// document, on one thread.
class Prometheus {
 public:
  // The "# HELP" and "# TYPE" lines that start a family.
  void family(std::string_view name, std::string_view type, std::string_view help);
  // One sample; `labels` is `a="x",b="y"` with values escaped by label(), or empty for none.
  void sample(std::string_view name, std::string_view labels, double value);
  // The _bucket, _sum and _count samples of `h`, in seconds, each with `labels` (may be empty).
  void histogram(std::string_view name, std::string labels, const etl::LatencyHistogram& h);
  // `value` escaped for a label value: backslash, double quote and newline.
  static std::string label(std::string_view value);
  // The document written so far; the writer is left empty.
  std::string take();

 private:
  static std::string number(double v);
  std::string text_;
};

}  // namespace wasmq::http
