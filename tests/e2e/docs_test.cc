// Docs as tests: every fenced block marked ```sh doc-test in README.md and docs/*.md runs, in the
// order of the file, against a broker this test starts, the way a reader runs it
// (docs/testing.md, "Docs as tests"). One test per file, so a failure names the file; the first
// block that fails stops its file and is reported with its line, its text and its output.
//
// What a block gets, per file:
// - a broker started on the shipped config/broker.toml (what `make run` uses), its listeners on
//   ports the kernel picks and its data in a temporary directory;
// - as working directory a fresh temporary directory that looks like the checkout: a symlink to
//   each top-level entry of the source tree, and `build` linked to this build's directory (so
//   `build/wasmq` and `build/modules/*.wasm` are the ones under test). Files a block writes land
//   in that directory, never in the checkout (a block must not write under a linked entry);
// - PATH with this build's directory first (`wasmq` is the binary under test), WASMQ_BROKER and
//   WASMQ_ADMIN set to the broker's data and admin URLs (the CLI's defaults for --broker and
//   --admin), TMPDIR a temporary directory, and no other WASMQ_ variable of the caller;
// - the addresses a reader's `make run` broker has, written out in the block
//   (http://localhost:9092, http://localhost:9094, 127.0.0.1:9093 and their localhost /
//   127.0.0.1 twins), replaced by the test broker's before it runs.
// Each block runs as `bash -euo pipefail` with stdin from /dev/null and at most kBlockSeconds.
// A ```text doc-output block right after a doc-test block (blank lines between at most) lists
// lines its output (stdout and stderr together) must contain, each as part of a line, in order.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "broker_process.h"

extern char** environ;

namespace wasmq {
namespace {

namespace fs = std::filesystem;

constexpr int kBlockSeconds = 60;

// One ```sh doc-test block: where its opening fence is (1-based line), its text, and the output
// lines that a ```text doc-output block right after it expects.
struct DocBlock {
  int line = 0;
  std::string text;
  std::optional<std::vector<std::string>> expected_output;
  int output_line = 0;
};

struct Fence {
  size_t indent = 0;
  char marker = '`';
  size_t length = 0;
  std::string info;
};

// The fence a line opens or closes (``` or ~~~, three or more, after any indentation).
std::optional<Fence> fence_of(const std::string& line) {
  Fence f;
  f.indent = line.find_first_not_of(' ');
  if (f.indent == std::string::npos) return std::nullopt;
  f.marker = line[f.indent];
  if (f.marker != '`' && f.marker != '~') return std::nullopt;
  size_t end = line.find_first_not_of(f.marker, f.indent);
  if (end == std::string::npos) end = line.size();
  f.length = end - f.indent;
  if (f.length < 3) return std::nullopt;
  std::string info = line.substr(end);
  info.erase(0, info.find_first_not_of(" \t"));
  info.erase(info.find_last_not_of(" \t\r") + 1);
  f.info = info;
  return f;
}

std::vector<std::string> words_of(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> words;
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

bool has_word(const std::vector<std::string>& words, const std::string& word) {
  return std::find(words.begin(), words.end(), word) != words.end();
}

// The doc-test blocks of a Markdown text, in order. A doc-output block that follows no doc-test
// block is an error: `error` names its line.
std::vector<DocBlock> doc_test_blocks(const std::string& markdown, std::string* error) {
  std::vector<std::string> lines;
  std::istringstream in(markdown);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::vector<DocBlock> blocks;
  int last_block_end = -1;  // index of the closing fence of the last doc-test block
  for (size_t i = 0; i < lines.size(); ++i) {
    std::optional<Fence> open = fence_of(lines[i]);
    if (!open) continue;
    std::string body;
    size_t j = i + 1;
    for (; j < lines.size(); ++j) {
      std::optional<Fence> close = fence_of(lines[j]);
      if (close && close->marker == open->marker && close->length >= open->length &&
          close->info.empty()) {
        break;
      }
      // Content is indented like its fence (a block inside a list item).
      const std::string& l = lines[j];
      size_t strip = std::min(open->indent, l.find_first_not_of(' ') == std::string::npos
                                                ? l.size()
                                                : l.find_first_not_of(' '));
      body += l.substr(strip) + "\n";
    }
    const std::vector<std::string> words = words_of(open->info);
    const bool shell = !words.empty() && (words[0] == "sh" || words[0] == "bash");
    if (shell && has_word(words, "doc-test")) {
      blocks.push_back({static_cast<int>(i) + 1, body, std::nullopt, 0});
      last_block_end = static_cast<int>(j);
    } else if (!words.empty() && words[0] == "text" && has_word(words, "doc-output")) {
      bool follows = last_block_end >= 0 && !blocks.back().expected_output;
      for (int k = last_block_end + 1; follows && k < static_cast<int>(i); ++k) {
        follows = lines[k].find_first_not_of(" \t\r") == std::string::npos;
      }
      if (!follows) {
        *error = "line " + std::to_string(i + 1) +
                 ": a ```text doc-output block must follow a ```sh doc-test block (blank lines "
                 "between at most)";
        return {};
      }
      std::vector<std::string> expected;
      std::istringstream out(body);
      for (std::string l; std::getline(out, l);) {
        l.erase(l.find_last_not_of(" \t\r") + 1);
        if (!l.empty()) expected.push_back(l);
      }
      blocks.back().expected_output = std::move(expected);
      blocks.back().output_line = static_cast<int>(i) + 1;
    }
    i = j;  // past the closing fence (or the end of an unclosed block)
  }
  return blocks;
}

// The first expected line not found in `output` (each a part of a line, in order), or nullopt.
std::optional<std::string> missing_output(const std::string& output,
                                          const std::vector<std::string>& expected) {
  std::vector<std::string> lines;
  std::istringstream in(output);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  size_t at = 0;
  for (const std::string& want : expected) {
    while (at < lines.size() && lines[at].find(want) == std::string::npos) ++at;
    if (at == lines.size()) return want;
    ++at;
  }
  return std::nullopt;
}

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

struct BlockRun {
  int exit_code = -1;
  std::string output;
};

// Runs `script` as `bash -euo pipefail` in `dir` with exactly `env`, at most kBlockSeconds
// (timeout(1) ends the whole process group), stdin from /dev/null, stdout and stderr to one file.
BlockRun run_block(const fs::path& script, const fs::path& dir, const std::vector<std::string>& env,
                   const fs::path& output_path) {
  std::vector<char*> envp;
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const std::string seconds = std::to_string(kBlockSeconds);
  const std::string script_path = script.string();
  std::vector<const char*> argv = {"timeout", "--kill-after=5", seconds.c_str(),     "bash",
                                   "-euo",    "pipefail",       script_path.c_str(), nullptr};
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::chdir(dir.c_str()) != 0) ::_exit(126);
    int null_in = ::open("/dev/null", O_RDONLY);
    int out = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(null_in, 0);
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::execve("/usr/bin/timeout", const_cast<char**>(argv.data()), envp.data());
    ::_exit(127);
  }
  BlockRun run;
  int status = 0;
  ::waitpid(pid, &status, 0);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  run.output = testing::slurp_file(output_path);
  return run;
}

// README.md and every docs/*.md, relative to the source tree, in order.
std::vector<std::string> doc_files() {
  std::vector<std::string> files = {"README.md"};
  std::vector<std::string> docs;
  for (const auto& entry : fs::directory_iterator(fs::path(WASMQ_SOURCE_DIR) / "docs")) {
    if (entry.path().extension() == ".md")
      docs.push_back("docs/" + entry.path().filename().string());
  }
  std::sort(docs.begin(), docs.end());
  files.insert(files.end(), docs.begin(), docs.end());
  return files;
}

// "docs/etl.md" -> "docs_etl_md": a test name, and part of the temporary directory's name.
std::string identifier_of(std::string file) {
  for (char& c : file) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return file;
}

std::string test_name_of(const ::testing::TestParamInfo<std::string>& info) {
  return identifier_of(info.param);
}

class DocsTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DocsTest, BlocksRunAsWritten) {
  const std::string file = GetParam();
  const fs::path source(WASMQ_SOURCE_DIR);
  std::string parse_error;
  const std::vector<DocBlock> blocks =
      doc_test_blocks(testing::slurp_file(source / file), &parse_error);
  ASSERT_TRUE(parse_error.empty()) << file << ":" << parse_error;
  if (blocks.empty()) GTEST_SKIP() << file << " has no ```sh doc-test blocks";

  const fs::path root = fs::temp_directory_path() /
                        ("wasmq-docs-" + std::to_string(::getpid()) + "-" + identifier_of(file));
  fs::remove_all(root);
  const fs::path work = root / "work", tmp = root / "tmp", scripts = root / "blocks";
  fs::create_directories(work);
  fs::create_directories(tmp);
  fs::create_directories(scripts);
  // The reader's checkout, without its build directories and data.
  const fs::path build_dir = fs::path(WASMQ_BINARY).parent_path();
  for (const auto& entry : fs::directory_iterator(source)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("build", 0) == 0 || name == "data" || name == ".git") continue;
    if (entry.is_directory()) {
      fs::create_directory_symlink(entry.path(), work / name);
    } else {
      fs::create_symlink(entry.path(), work / name);
    }
  }
  fs::create_directory_symlink(build_dir, work / "build");

  // The shipped configuration, with the listeners on free ports and the data here.
  testing::BrokerProcess broker(root / "broker");
  fs::copy_file(source / "config" / "broker.toml", broker.config_path(),
                fs::copy_options::overwrite_existing);
  const std::vector<std::pair<std::string, std::string>> overrides = {
      {"WASMQ_BROKER_LISTEN", "127.0.0.1:0"},
      {"WASMQ_ADMIN_LISTEN", "127.0.0.1:0"},
      {"WASMQ_KAFKA_LISTEN", "127.0.0.1:0"},
      {"WASMQ_BROKER_DATA_DIR", broker.data_dir().string()}};
  for (const auto& [name, value] : overrides) ::setenv(name.c_str(), value.c_str(), 1);
  std::string start_error;
  try {
    broker.start();
  } catch (const std::exception& e) {
    start_error = e.what();
  }
  for (const auto& [name, value] : overrides) ::unsetenv(name.c_str());
  ASSERT_TRUE(start_error.empty()) << start_error;
  ASSERT_FALSE(broker.kafka_address().empty()) << "config/broker.toml has no [kafka] listen";

  std::vector<std::string> env;
  std::string path = build_dir.string();
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string var(*e);
    if (var.rfind("WASMQ_", 0) == 0 || var.rfind("TMPDIR=", 0) == 0) continue;
    if (var.rfind("PATH=", 0) == 0) {
      path += ":" + var.substr(5);
      continue;
    }
    env.push_back(var);
  }
  env.push_back("PATH=" + path);
  env.push_back("WASMQ_BROKER=" + broker.data_url());
  env.push_back("WASMQ_ADMIN=" + broker.admin_url());
  env.push_back("TMPDIR=" + tmp.string());

  for (const DocBlock& block : blocks) {
    std::string text = block.text;
    for (const char* host : {"localhost", "127.0.0.1"}) {
      replace_all(text, std::string("http://") + host + ":9092", broker.data_url());
      replace_all(text, std::string("http://") + host + ":9094", broker.admin_url());
      replace_all(text, std::string(host) + ":9093", broker.kafka_address());
    }
    const std::string where = file + ":" + std::to_string(block.line);
    const fs::path script = scripts / (std::to_string(block.line) + ".sh");
    std::ofstream(script) << text;
    const BlockRun run =
        run_block(script, work, env, scripts / (std::to_string(block.line) + ".out"));
    std::string failure;
    if (run.exit_code == 124 || run.exit_code == 128 + SIGKILL) {
      failure = "timed out after " + std::to_string(kBlockSeconds) + " s";
    } else if (run.exit_code != 0) {
      failure = "exited with " + std::to_string(run.exit_code);
    } else if (block.expected_output) {
      if (auto missing = missing_output(run.output, *block.expected_output)) {
        failure = "output lacks \"" + *missing + "\" (the doc-output block at line " +
                  std::to_string(block.output_line) + ", in order)";
      }
    }
    if (!failure.empty()) {
      ADD_FAILURE() << where << ": the doc-test block " << failure << "\n--- block ---\n"
                    << block.text << "--- output ---\n"
                    << run.output << "--- broker log (end) ---\n"
                    << broker.log_tail(2000);
      break;
    }
  }
  EXPECT_EQ(broker.stop(), 0) << "the broker did not stop cleanly; log:\n" << broker.log_tail();
  fs::remove_all(root);
}

INSTANTIATE_TEST_SUITE_P(Docs, DocsTest, ::testing::ValuesIn(doc_files()), test_name_of);

// The runner's reading of Markdown: which fences are doc-test blocks, where they start, what a
// doc-output block expects.
TEST(DocBlocks, FindsMarkedShellBlocksWithTheirLinesAndExpectedOutput) {
  const std::string markdown =
      "# Title\n"
      "```sh\n"
      "make run\n"
      "```\n"
      "- a list item:\n"
      "  ```sh doc-test\n"
      "  echo one\n"
      "  ```\n"
      "\n"
      "  ```text doc-output\n"
      "  one\n"
      "  ```\n"
      "````md\n"
      "```sh doc-test\n"
      "not a block: inside another fence\n"
      "```\n"
      "````\n"
      "~~~bash doc-test\n"
      "echo two\n"
      "~~~\n";
  std::string error;
  auto blocks = doc_test_blocks(markdown, &error);
  ASSERT_TRUE(error.empty()) << error;
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_EQ(blocks[0].line, 6);
  EXPECT_EQ(blocks[0].text, "echo one\n");
  ASSERT_TRUE(blocks[0].expected_output);
  EXPECT_EQ(*blocks[0].expected_output, std::vector<std::string>{"one"});
  EXPECT_EQ(blocks[1].line, 18);
  EXPECT_EQ(blocks[1].text, "echo two\n");
  EXPECT_FALSE(blocks[1].expected_output);

  doc_test_blocks("```sh\nls\n```\n```text doc-output\nx\n```\n", &error);
  EXPECT_EQ(error.rfind("line 4: ", 0), 0u) << error;
}

TEST(DocBlocks, ExpectedOutputLinesAreFoundInOrder) {
  EXPECT_FALSE(missing_output("a: 1\nb: 2\nc: 3\n", {"a:", "c: 3"}));
  EXPECT_EQ(missing_output("a: 1\nb: 2\n", {"b", "a"}), "a");
}

}  // namespace
}  // namespace wasmq
