// Handoff: one result handed from another thread (an ETL worker, a storage thread, a broker
// wake-up callback) to a handler coroutine waiting on an I/O thread.
//
// How it works: a promise posted back to the waiting coroutine's executor. The waiter's
// completion handler is parked in a small mutex-guarded state; send() takes it and posts it,
// with the value, to the executor the waiter runs on (for a Server handler: its connection's
// strand). So the handler resumes on its own I/O thread, never on the sender's, and the sender
// never blocks on the network. Cost per handoff: one shared state allocation, one post.
//
//   auto [sender, receiver] = make_handoff<Result<Batch>>();
//   etl_queue.push([sender, input] { sender.send(run_pipeline(input)); });  // worker thread
//   Result<Result<Batch>> outcome = co_await receiver.receive();           // I/O thread
//
// Outcomes of receive(): the value; kInternal "abandoned" when every sender copy was destroyed
// without sending; kTimeout from receive_for() when the time ran out first; kInternal
// "cancelled" when the awaiting coroutine was cancelled (the server stopping past its deadline).
// A timed-out or cancelled receive may be repeated; a delivered value is delivered once.
//
// Threads: HandoffSender is copyable and send() may be called from any thread (the first send
// wins; later ones return false). HandoffReceiver belongs to one coroutine: call receive() from
// a strand or a single-threaded executor, one receive at a time. T must not be Status.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "common/mutex.h"
#include "common/status.h"

namespace wasmq {

namespace detail {

template <typename T>
class HandoffState : public std::enable_shared_from_this<HandoffState<T>> {
 public:
  // A receive waiting for its outcome: the type-erased completion handler and the executor it
  // must resume on (tracked, so its io_context does not run out of work while it waits).
  struct Waiter {
    boost::asio::any_completion_handler<void(Result<T>)> handler;
    boost::asio::any_io_executor executor;
  };

  // Settles the handoff with `outcome` (a value, or the abandoned status) unless already
  // settled. Any thread.
  bool settle(Result<T> outcome) {
    ReleasableMutexLock lock(mutex_);
    if (settled_) return false;
    settled_ = true;
    if (!waiter_) {
      outcome_.emplace(std::move(outcome));
      return true;
    }
    delivered_ = true;
    Waiter waiter = std::move(*waiter_);
    waiter_.reset();
    lock.unlock();
    deliver(std::move(waiter), std::move(outcome));
    return true;
  }

  // Wakes the current waiter, if any, with `status` (timeout, cancellation); the handoff stays
  // open. Called on the waiter's executor.
  void wake(Status status) {
    ReleasableMutexLock lock(mutex_);
    if (!waiter_) return;
    Waiter waiter = std::move(*waiter_);
    waiter_.reset();
    lock.unlock();
    deliver(std::move(waiter), std::move(status));
  }

  template <typename CompletionToken>
  auto async_receive(CompletionToken&& token) {
    return boost::asio::async_initiate<CompletionToken, void(Result<T>)>(
        [self = this->shared_from_this()](auto handler) {
          // The concrete handler's executor (for a coroutine: its strand), before type erasure.
          boost::asio::any_io_executor executor = boost::asio::prefer(
              boost::asio::get_associated_executor(handler, boost::asio::system_executor()),
              boost::asio::execution::outstanding_work.tracked);
          self->start_wait(Waiter{std::move(handler), std::move(executor)});
        },
        token);
  }

 private:
  // Installed in the waiter's cancellation slot; holds the state weakly.
  struct CancelWait {
    std::weak_ptr<HandoffState> state;
    void operator()(boost::asio::cancellation_type) {
      if (auto locked = state.lock()) locked->wake(Status(StatusCode::kInternal, "cancelled"));
    }
  };

  void start_wait(Waiter waiter) {
    ReleasableMutexLock lock(mutex_);
    if (delivered_ || waiter_) {
      bool delivered = delivered_;
      lock.unlock();
      deliver(std::move(waiter),
              Status(StatusCode::kInternal, delivered ? "the handoff was already received"
                                                      : "another receive is waiting"));
      return;
    }
    if (outcome_) {
      delivered_ = true;
      Result<T> outcome = std::move(*outcome_);
      outcome_.reset();
      lock.unlock();
      deliver(std::move(waiter), std::move(outcome));
      return;
    }
    auto slot = boost::asio::get_associated_cancellation_slot(waiter.handler);
    if (slot.is_connected()) slot.template emplace<CancelWait>(CancelWait{this->weak_from_this()});
    waiter_.emplace(std::move(waiter));
  }

  // Posts the waiter, with its outcome, to the waiter's own executor.
  static void deliver(Waiter waiter, Result<T> outcome) {
    boost::asio::any_io_executor executor = waiter.executor;
    boost::asio::post(executor, [handler = std::move(waiter.handler),
                                 outcome = std::move(outcome)]() mutable {
      // Our CancelWait must not outlive the wait; this runs on the waiter's executor, where
      // cancellation is emitted, so clearing here cannot race with an emit.
      boost::asio::get_associated_cancellation_slot(handler).clear();
      std::move(handler)(std::move(outcome));
    });
  }

  Mutex mutex_;
  bool settled_ GUARDED_BY(mutex_) = false;              // send() or abandonment happened
  bool delivered_ GUARDED_BY(mutex_) = false;            // the outcome went to a waiter
  std::optional<Result<T>> outcome_ GUARDED_BY(mutex_);  // settled, not yet received
  std::optional<Waiter> waiter_ GUARDED_BY(mutex_);      // a parked receive
};

// Shared by every copy of a sender; the last copy gone without a send abandons the handoff.
template <typename T>
struct HandoffSenderLink {
  explicit HandoffSenderLink(std::shared_ptr<HandoffState<T>> state) : state(std::move(state)) {}
  HandoffSenderLink(const HandoffSenderLink&) = delete;
  HandoffSenderLink& operator=(const HandoffSenderLink&) = delete;
  ~HandoffSenderLink() {
    state->settle(Status(StatusCode::kInternal, "abandoned: no result was sent"));
  }

  const std::shared_ptr<HandoffState<T>> state;
};

}  // namespace detail

// The sending end: copyable, any thread.
template <typename T>
class HandoffSender {
 public:
  explicit HandoffSender(std::shared_ptr<detail::HandoffState<T>> state)
      : link_(std::make_shared<detail::HandoffSenderLink<T>>(std::move(state))) {}

  // Hands `value` to the receiver; false when a value was already sent.
  bool send(T value) const { return link_->state->settle(Result<T>(std::move(value))); }

 private:
  std::shared_ptr<detail::HandoffSenderLink<T>> link_;
};

// The receiving end: used by one coroutine.
template <typename T>
class HandoffReceiver {
 public:
  explicit HandoffReceiver(std::shared_ptr<detail::HandoffState<T>> state)
      : state_(std::move(state)) {}

  // Waits for the value (see the outcomes above). Resumes on the awaiting coroutine's executor.
  boost::asio::awaitable<Result<T>> receive() {
    return state_->async_receive(boost::asio::use_awaitable);
  }

  // Like receive(), but gives up after `timeout` with kTimeout (the handoff stays open: a later
  // receive may still get the value).
  boost::asio::awaitable<Result<T>> receive_for(std::chrono::steady_clock::duration timeout) {
    auto state = state_;
    boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor, timeout);
    timer.async_wait([weak = std::weak_ptr(state)](boost::system::error_code error) {
      if (error) return;
      if (auto locked = weak.lock()) locked->wake(Status(StatusCode::kTimeout, "timed out"));
    });
    Result<T> outcome = co_await state->async_receive(boost::asio::use_awaitable);
    timer.cancel();
    co_return outcome;
  }

 private:
  std::shared_ptr<detail::HandoffState<T>> state_;
};

// A connected sender and receiver.
template <typename T>
std::pair<HandoffSender<T>, HandoffReceiver<T>> make_handoff() {
  auto state = std::make_shared<detail::HandoffState<T>>();
  return {HandoffSender<T>(state), HandoffReceiver<T>(state)};
}

// Runs `work` on `tasks` (anything with post(std::function<void()>), such as the broker's disk
// threads) and awaits its value without holding the calling I/O thread. `work` owns what it
// uses: the awaiting coroutine may be gone when it runs. Pass a named std::function: GCC 12
// destroys a temporary built inside a co_await expression twice.
template <typename T, typename Tasks>
boost::asio::awaitable<Result<T>> run_on(Tasks& tasks, std::function<T()> work) {
  auto [sender, receiver] = make_handoff<T>();
  tasks.post([sender = sender, work = std::move(work)] { sender.send(work()); });
  co_return co_await receiver.receive();
}

}  // namespace wasmq
