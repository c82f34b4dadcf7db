# RLIMIT_DATA counts private writable mappings.
setrlimit data 1p 1p
mmap 0 4p rw private|anonymous          => ENOMEM
a = mmap 0 4p r private|anonymous       => ok
b = mmap 0 4p rw shared|anonymous      => ok
