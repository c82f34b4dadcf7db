a = mmap 0 2p rw private|anonymous
munmap $a 2p
mprotect $a 2p r           => ENOMEM
