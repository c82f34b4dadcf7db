# mlock(2) rounds the start down and the length up.
a = mmap 0 3p rw private|anonymous
mlock $a+1p+5 10           => ok
smaps
maps
