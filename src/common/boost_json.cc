// Boost.JSON is header-only here: its implementation is compiled once, in this file.
#include <boost/json/src.hpp>
