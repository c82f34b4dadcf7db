a = mmap 0 2p rw private|anonymous
write $a 2p 0x1
msync $a 2p sync           => ok
msync $a 2p async          => ok
msync $a 2p 0              => ok
msync $a 2p invalidate     => ok
