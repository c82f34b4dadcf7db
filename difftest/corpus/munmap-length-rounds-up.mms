# The length is rounded up to a page: unmapping 1 byte unmaps the page.
a = mmap 0 2p rw private|anonymous
munmap $a 1                => ok
read $a 1                  => SIGSEGV/SEGV_MAPERR
read $a+1p 1               => ok
