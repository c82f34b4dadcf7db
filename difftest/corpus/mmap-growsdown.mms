a = mmap 0 2p rw private|anonymous|growsdown  => ok
write $a 1 0x1
maps
