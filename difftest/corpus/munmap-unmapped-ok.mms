# munmap(2): it is not an error if the range contains no mapped pages.
a = mmap 0 2p rw private|anonymous
munmap $a 2p               => ok
munmap $a 2p               => ok
