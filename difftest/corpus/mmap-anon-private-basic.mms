# A private anonymous mapping reads as zeros and keeps what is written.
a = mmap 0 2p rw private|anonymous      => ok
read $a 4
write $a 2p 0x41
read $a+1p 3
maps
