a = mmap 0 4p rw private|anonymous|stack   => ok
write $a 4p 0x7
maps
