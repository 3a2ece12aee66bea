// One example per command, at the end of its --help.
#pragma once

namespace CLI {
class App;
}

namespace wasmq::cli {

// Adds an "Example: wasmq ..." line to the help of every command of `app` that has none. Call
// after every command is added.
void add_help_examples(CLI::App& app);

}  // namespace wasmq::cli
