# msync(2): EBUSY if MS_INVALIDATE was given and a memory lock exists on the range.
a = mmap 0 2p rw private|anonymous
mlock $a 2p
msync $a 2p invalidate     => EBUSY
msync $a 2p sync           => ok
