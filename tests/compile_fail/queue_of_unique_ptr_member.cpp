// expect: U is not serializable: a pointer (raw or smart) would arrive without its target
#include <mproc/queue.hpp>
#include <memory>
struct Job {  // a plain aggregate whose unique_ptr cannot travel: the notes must name it and say why
    int id = 0;
    std::unique_ptr<int> data;
};
int main() { mproc::Queue<Job> q; }
