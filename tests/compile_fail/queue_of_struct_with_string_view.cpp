// expect: U is not serializable: it holds a pointer or a view, an address that means nothing in another process
#include <mproc/queue.hpp>
#include <string_view>
struct Msg {  // trivially copyable, so bytes would copy, but the view's address means nothing elsewhere
    int id = 0;
    std::string_view text;
};
int main() { mproc::Queue<Msg> q; }
