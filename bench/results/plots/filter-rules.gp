set terminal pngcairo noenhanced size 960,600
set output 'filter-rules.png'
set title 'sluice-bench filter: ns/packet against rules'
set xlabel 'rules'
set ylabel 'ns/packet (median, bars q1-q3)'
set key below
set grid
set yrange [0:*]
set logscale x
$series0 << EOD
1 160 148 170
64 151 150 157
1024 153 146 182
4096 151 149 173
EOD
$series1 << EOD
1 164 158 199
64 171 160 184
1024 168 154 170
4096 162 157 165
EOD
$series2 << EOD
1 158 156 160
64 158 154 159
1024 180 154 191
4096 172 162 188
EOD
$floor << EOD
1 30
64 30
1024 31
4096 30
EOD
plot $series0 using 1:2:3:4 with yerrorlines lw 2 title 'sluice, rule miss', \
     $series1 using 1:2:3:4 with yerrorlines lw 2 title 'sluice, first rule', \
     $series2 using 1:2:3:4 with yerrorlines lw 2 title 'sluice, last rule', \
     $floor using 1:2 with lines dt 2 lc 'black' title 'floor: empty XDP_DROP'
